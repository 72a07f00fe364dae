package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"

	"github.com/spf13/cobra"

	"github.com/bwxchange/bwx/arbiter/store"
)

func storeCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "store", Short: "the arbiter's database"}
	var dsn, from string
	migrate := &cobra.Command{
		Use:   "migrate-to-postgres",
		Short: "copy the sqlite database to an empty PostgreSQL database, checked row for row",
		Long: `Copies the sqlite database (store.path from the config, or --from) into the
empty PostgreSQL database --dsn names, as of one consistent snapshot: the
exchange may keep running on the file meanwhile, and what it writes after
the snapshot is not copied. Stop the arbiter first for a final copy. Every
table is copied in one PostgreSQL transaction, the id sequences continue
after the copied ids, and each table is read back from both databases in
key order and compared (rows and sha256) before it commits. A target with
any row in it is refused. Then set store.driver: postgres and store.dsn.`,
		Example: `  bwx-arbiter store migrate-to-postgres --dsn 'host=db1,db2 dbname=bwx user=bwx target_session_attrs=read-write'`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := store.CheckDSN(dsn); err != nil {
				return fmt.Errorf("--dsn: %w", err)
			}
			if from == "" {
				cfg, err := loadConfigOrDefault(g.configPath)
				if err != nil {
					return err
				}
				if cfg.Store.Driver == string(store.Postgres) {
					return errors.New("the config's store.driver is postgres already: give the sqlite file with --from")
				}
				from = cfg.StorePath()
			}
			if _, err := os.Stat(from); err != nil {
				return fmt.Errorf("sqlite database: %w", err)
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			fmt.Fprintf(cmd.ErrOrStderr(), "copying %s to PostgreSQL\n", from)
			var rows int64
			copied, err := store.CopyToPostgres(ctx, from, dsn, func(c store.TableCopy) {
				rows += c.Rows
				fmt.Fprintf(cmd.OutOrStdout(), "%-20s %10d rows  sha256 %s  identical\n", c.Table, c.Rows, c.Checksum)
			})
			if err != nil {
				return fmt.Errorf("nothing committed: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "copied %d tables, %d rows; now set store.driver: postgres and store.dsn in the config\n", len(copied), rows)
			return nil
		},
	}
	migrate.Flags().StringVar(&dsn, "dsn", "", "PostgreSQL connection string or URL of the empty target database")
	migrate.Flags().StringVar(&from, "from", "", "the sqlite database file (default: store.path from the config)")
	migrate.MarkFlagRequired("dsn")
	c.AddCommand(migrate)
	return c
}
