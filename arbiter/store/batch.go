package store

import "context"

// InsertIdempotent runs insert once for each of n rows, with the arguments
// row(i) gives, and counts the rows stored and the rows its conflict clause
// (ON CONFLICT ... DO NOTHING on an idempotency key) skipped as sent
// before. The caller's transaction makes the batch all or nothing; an
// error from row or the insert ends it.
func InsertIdempotent(ctx context.Context, q Querier, insert string, n int, row func(i int) ([]any, error)) (accepted, duplicates int, err error) {
	for i := range n {
		args, err := row(i)
		if err != nil {
			return 0, 0, err
		}
		res, err := q.ExecContext(ctx, insert, args...)
		if err != nil {
			return 0, 0, err
		}
		if k, _ := res.RowsAffected(); k == 1 {
			accepted++
		} else {
			duplicates++
		}
	}
	return accepted, duplicates, nil
}
