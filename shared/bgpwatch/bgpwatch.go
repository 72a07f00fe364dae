// Package bgpwatch is how the two embedded GoBGP servers (the arbiter's
// route server and the agent's speaker) follow their sessions and tables:
// one subscription, its events split into session changes and paths.
package bgpwatch

import (
	"context"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
)

// Handlers receive the events, in GoBGP's order, on its watch goroutine.
type Handlers struct {
	Peer  func(*api.WatchEventResponse_PeerEvent)
	Paths func([]*api.Path)
}

// Watch subscribes to every session's state changes and to the table
// events of the given kinds. The returned cancel ends the subscription.
func Watch(bgp *server.BgpServer, table []api.WatchEventRequest_Table_Filter_Type, h Handlers) (cancel context.CancelFunc, err error) {
	filters := make([]*api.WatchEventRequest_Table_Filter, len(table))
	for i, t := range table {
		filters[i] = &api.WatchEventRequest_Table_Filter{Type: t}
	}
	ctx, cancel := context.WithCancel(context.Background())
	err = bgp.WatchEvent(ctx, &api.WatchEventRequest{
		Peer:  &api.WatchEventRequest_Peer{},
		Table: &api.WatchEventRequest_Table{Filters: filters},
	}, h.dispatch)
	if err != nil {
		cancel()
		return nil, err
	}
	return cancel, nil
}

func (h Handlers) dispatch(ev *api.WatchEventResponse) {
	switch e := ev.Event.(type) {
	case *api.WatchEventResponse_Peer:
		h.Peer(e.Peer)
	case *api.WatchEventResponse_Table:
		h.Paths(e.Table.Paths)
	}
}
