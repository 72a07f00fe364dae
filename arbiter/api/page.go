package api

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Every List* call pages: it answers at most page_size items (0:
// DefaultPageSize; above MaxPageSize InvalidArgument, not clamped, so that
// a client never takes a short page for the end) in a stable order, and
// sets next_page_token when more follow.
//
// The token is a keyset cursor: the last item's key (an id, or the
// list's sort key), so an item added between two pages is seen once or,
// if it sorts before the cursor, on the next full read, and none is seen
// twice. It is sealed with an HMAC over the caller, the method and the
// request's filters, under a key made when the arbiter starts: a token
// from another member, another list or other filters, from before a
// restart, or altered, is InvalidArgument.
const (
	DefaultPageSize = 500
	MaxPageSize     = 5000
)

var pageKey = func() []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic(err)
	}
	return k
}()

// page is one request's paging: how many items, after which key.
type page struct {
	size  int
	after string // "": the first page
	bind  string // caller, method and filters, as the token is sealed over
}

// pageOf reads a request's page_size and page_token. filters are the
// request's other fields that change what is listed.
func pageOf(ctx context.Context, method string, size int32, token string, filters ...any) (page, error) {
	switch {
	case size < 0:
		return page{}, invalidArg("page_size", "want 0 (the default, %d) to %d, got %d", DefaultPageSize, MaxPageSize, size)
	case size > MaxPageSize:
		return page{}, invalidArg("page_size", "at most %d items a page, got %d: page with page_token", MaxPageSize, size)
	case size == 0:
		size = DefaultPageSize
	}
	p := page{size: int(size), bind: fmt.Sprintf("%s\x00%s\x00%v", callerFrom(ctx).String(), method, filters)}
	if token == "" {
		return p, nil
	}
	body, sum, ok := strings.Cut(token, ".")
	key, err1 := base64.RawURLEncoding.DecodeString(body)
	mac, err2 := base64.RawURLEncoding.DecodeString(sum)
	if !ok || err1 != nil || err2 != nil || !hmac.Equal(mac, p.seal(string(key))) {
		return page{}, invalidArg("page_token", "not a token this arbiter gave for this list, caller and filters (altered, or from before a restart): start again without it")
	}
	p.after = string(key)
	return p, nil
}

func (p page) seal(key string) []byte {
	h := hmac.New(sha256.New, pageKey)
	h.Write([]byte(p.bind))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return h.Sum(nil)[:16]
}

// token is the next page's token, continuing after key.
func (p page) token(key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(key)) + "." + base64.RawURLEncoding.EncodeToString(p.seal(key))
}

// afterID is the cursor as an id (0: the first page).
func (p page) afterID() int64 {
	id, _ := strconv.ParseInt(p.after, 10, 64) // sealed by this arbiter: always an id
	return id
}

// fetch is how many items to read: one more than a page tells whether
// another follows.
func (p page) fetch() int { return p.size + 1 }

// cut trims items (read with fetch) to the page and returns the next
// page's token, or "" at the end.
func cut[T any](p page, items []T, key func(T) string) ([]T, string) {
	if len(items) <= p.size {
		return items, ""
	}
	items = items[:p.size]
	return items, p.token(key(items[len(items)-1]))
}

// cutAt pages a list made whole in memory (bounded by the membership,
// the registry or the route server's limits), in its own order: the items
// after the one whose key the token names. Keys are unique in the list.
func cutAt[T any](p page, items []T, key func(T) string) ([]T, string, error) {
	if p.after != "" {
		i := slices.IndexFunc(items, func(x T) bool { return key(x) == p.after })
		if i < 0 {
			return nil, "", invalidArg("page_token", "the item this page ended at is gone from the list: start again without it")
		}
		items = items[i+1:]
	}
	out, next := cut(p, items, key)
	return out, next, nil
}

func idKey(id int64) string { return strconv.FormatInt(id, 10) }
