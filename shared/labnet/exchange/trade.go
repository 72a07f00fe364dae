package exchange

import (
	"context"
	"fmt"
	"time"
)

// TradeResult is what the walking-skeleton trade produced.
type TradeResult struct {
	Trades     string // the operator's trade table
	BuyerLine  string // the buyer agent's log line for the trade event
	SellerLine string // the seller agent's
}

// DemoTrade places a sell and a matching buy by hand, through the agents'
// commands, for prefix (owned by seller), and waits until both agents have
// logged the trade event.
func (x *Exchange) DemoTrade(ctx context.Context, seller, buyer *Member, prefix string) (TradeResult, error) {
	var r TradeResult
	if _, err := x.Agent(ctx, seller, "order", "sell", "--prefix", prefix, "--capacity", "2G", "--min-block", "500M",
		"--price", "0.30", "--duration", "90d"); err != nil {
		return r, err
	}
	if _, err := x.Agent(ctx, buyer, "order", "buy", "--prefix", prefix, "--capacity", "1G", "--min-block", "500M",
		"--price", "0.40", "--duration", "30d"); err != nil {
		return r, err
	}
	var err error
	want := []string{"trade event", "CREATED", fmt.Sprintf(`"prefixes":"%s"`, prefix)}
	if r.BuyerLine, err = WaitLog(ctx, buyer.Log, 15*time.Second, append(want, `"role":"buyer"`)...); err != nil {
		return r, err
	}
	if r.SellerLine, err = WaitLog(ctx, seller.Log, 15*time.Second, append(want, `"role":"seller"`)...); err != nil {
		return r, err
	}
	r.Trades, err = x.Operator(ctx, "trades")
	return r, err
}
