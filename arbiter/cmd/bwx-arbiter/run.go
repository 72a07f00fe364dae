package main

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/bwxchange/bwx/arbiter/daemon"
	"github.com/bwxchange/bwx/shared/logging"
)

func runCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "run",
		Short: "run the arbiter daemon (systemd: bwx-arbiter.service)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := daemon.LoadConfig(g.configPath)
			if err != nil {
				return err
			}
			log, level, err := logging.NewReloadable(os.Stderr, cfg.Log.Level, cfg.Log.Format)
			if err != nil {
				return err
			}
			a, err := daemon.Start(cfg, log)
			if err != nil {
				return err
			}
			sigs := make(chan os.Signal, 1)
			signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
			for sig := range sigs {
				if sig == syscall.SIGHUP {
					reload(g.configPath, cfg, level, log)
					continue
				}
				log.Info("stopping", "signal", sig.String())
				break
			}
			err = a.Exit()
			log.Info("stopped")
			return err
		},
	}
}

// reload applies what can change safely while running (the log level) and
// says which other changes need a restart.
func reload(path string, cur daemon.Config, level *slog.LevelVar, log *slog.Logger) {
	next, err := daemon.LoadConfig(path)
	if err == nil {
		err = next.Validate()
	}
	if err != nil {
		log.Error("reload refused, keeping the running config", "error", err)
		return
	}
	lv, _ := logging.ParseLevel(next.Log.Level)
	level.Set(lv)
	next.Log.Level = cur.Log.Level
	if !reflect.DeepEqual(next, cur) {
		log.Warn("config changed beyond log.level; restart bwx-arbiter to apply it")
	}
	log.Info("config reloaded", "log_level", lv.String())
}

func loadConfigOrDefault(path string) (daemon.Config, error) {
	cfg, err := daemon.LoadConfig(path)
	if errors.Is(err, fs.ErrNotExist) {
		return daemon.DefaultConfig(), nil
	}
	if err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}
