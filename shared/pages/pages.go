// Package pages reads the arbiter's paged List calls: each answers a page
// and a next_page_token while more follow (arbiter/api/page.go).
package pages

import (
	"context"
	"fmt"
)

// Paged is a List response.
type Paged interface{ GetNextPageToken() string }

// Call asks for one page: after token ("" for the first), at most size
// items (0: the arbiter's default).
type Call[R Paged] func(ctx context.Context, token string, size int32) (R, error)

// Collect reads every page, or the first limit items (0: all), and
// returns their items in order.
func Collect[R Paged, T any](ctx context.Context, call Call[R], items func(R) []T, limit int) ([]T, error) {
	var out []T
	err := Each(ctx, call, func(r R) (bool, error) {
		out = append(out, items(r)...)
		if limit > 0 && len(out) >= limit {
			out = out[:limit]
			return false, nil
		}
		return true, nil
	}, limit)
	return out, err
}

// Each reads pages in order and hands each to each until it returns false,
// an error, or the last page. With limit > 0 no page asks for more than
// limit items.
func Each[R Paged](ctx context.Context, call Call[R], each func(R) (more bool, err error), limit int) error {
	var size int32
	if limit > 0 && limit < 5000 {
		size = int32(limit)
	}
	token := ""
	seen := map[string]bool{}
	for {
		r, err := call(ctx, token, size)
		if err != nil {
			return err
		}
		more, err := each(r)
		if err != nil || !more {
			return err
		}
		token = r.GetNextPageToken()
		if token == "" {
			return nil
		}
		if seen[token] {
			return fmt.Errorf("the arbiter gave page token %q twice: stopping rather than looping", token)
		}
		seen[token] = true
	}
}
