// Package routeserver is the exchange's BGP speaker: an embedded GoBGP
// (v3) that holds one eBGP session per member router on the exchange LAN,
// collects and checks the routes members announce, and delivers trades to
// buyers as BGP paths whose next hop is the seller's router.
//
// # Sessions
//
// Members are plain eBGP peers, not route-server clients (GoBGP never
// sends locally originated paths to route-server clients). Each member
// router address is one neighbor; a neighbor on an IPv4 address carries
// ipv4-unicast, one on an IPv6 address carries ipv6-unicast (MP-BGP).
// The member's router must:
//
//   - peer with the route server's ASN from each of its LAN addresses;
//   - accept the routes without an RFC 8212 policy block (BIRD 2: `import
//     all` or a filter; FRR: `no bgp ebgp-requires-policy` or a route-map);
//   - accept a third-party next hop on the LAN (BIRD's default `gateway
//     direct`; FRR accepts it);
//   - negotiate ADD-PATH receive to get every seller's path when it buys
//     one prefix from several sellers (BIRD: `add paths rx`; FRR: nothing
//     to do, it always advertises receive), and the route server must be
//     told so (Member.AddPathReceive). Without it a router gets one path
//     per prefix: its oldest trade's.
//
// Max-prefix (Member.MaxPrefixes) counts each address family of each
// session on its own; above it the session is closed with CEASE
// "maximum number of prefixes reached" and stays down until
// [Server.ResetMember].
//
// # Misbehaving members
//
// A member's session costs only itself. GoBGP applies RFC 7606 (a bad
// attribute length: treat-as-withdraw; a malformed NLRI: session reset),
// max-prefix, a 5 s idle hold after each drop, and a write deadline of
// the hold time: a router that stops reading is closed ("write-failed"),
// and as every session has its own send queue and writer, the others are
// not held up. The route server adds: an AS_PATH limit (MaxASPathLen,
// [ReasonASPathTooLong]); flap damping (Config.FlapLimit drops within
// FlapWindow hold the session down for FlapDamp, [ReasonFlapping]); and
// the reason of every close, which GoBGP logs but does not put in its
// peer events, logged as "member session closed" and counted by
// [Server.SessionsClosed].
//
// # Routes members announce
//
// Nothing a member announces is ever sent to another member. The import
// policy rejects every learned route from the Loc-RIB (so learned routes
// never compete with trades in best-path selection and can never be
// exported); the route server reads the pre-policy Adj-RIB-In through
// GoBGP's ADJIN watch instead, checks every route with the [Checker]
// (registry, IRR, RPKI) and with its own sanity checks (first AS is the
// member's, no AS_SET, next hop one of the member's own registered
// routers: [ReasonNextHop]), keeps the verdict with its reason
// ([Server.Received], [Server.Stats]) and reports each change through
// [Server.OnRoute]. Only accepted routes make a trade deliverable.
// [Server.Recheck] re-runs the Checker when registry data change; no
// policy or defined set is rebuilt for it.
//
// # Trades
//
// A trade is delivered as paths the route server originates (GoBGP
// AddPath) and removed with DeletePath by UUID; policy is never edited to
// start or end a trade. There is one path per (buyer, prefix, seller
// router), and it carries only that buyer's and its trades' communities:
//
//	NLRI      the traded prefix
//	NEXT_HOP  the seller's router on the LAN (Trade.NextHop4 / NextHop6)
//	AS_PATH   <route server ASN> + the AS_PATH the seller announced for
//	          the most specific accepted route covering the prefix, so the
//	          origin AS is the real one and RPKI validation at the buyer works
//	ORIGIN    as the seller announced it
//	COMMUNITY NO_EXPORT (65535:65281), unless the buyer's trades let it
//	          pass the prefix on (Trade.Exportable)
//	LARGE_COMMUNITY, the buyer's and one per trade the path serves:
//	          <route server ASN>:1:<buyer ASN>   deliver to this buyer
//	          <route server ASN>:2:<trade ID>    the trade(s) the path serves
//
// Where a buyer's paths live decides what it is sent. GoBGP v3 sends a
// peer without ADD-PATH only the best path per prefix and does not fall
// back to the next one when the export policy rejects it, so such a buyer
// has a VRF of its own (bwx-vrf-<ASN>, route distinguisher and target
// <ASN as an IPv4 address>:1) to which its sessions are bound: it is sent
// the best of its own paths, and nothing from anyone else's table. Of
// several of its paths for one prefix the oldest trade's (lowest ID) wins,
// through LOCAL_PREF, which eBGP never sends. A buyer with ADD-PATH
// receive stays in the global table, where each path has its own ADD-PATH
// identifier and the export policy passes it only to its buyer: GoBGP v3
// syncs a VRF-bound ADD-PATH session with the best path alone when it
// comes up, so VRFs would lose that buyer's other sellers. One global
// export policy has a statement per member: a path leaves towards a
// neighbor only if it is locally originated, carries
// <route server ASN>:1:<that member's ASN>, and the neighbor is one of
// that member's addresses. Everything else is rejected. So a member that
// bought nothing is sent no UPDATE, announce or withdraw.
//
// A path is announced only while the seller's router at the trade's next
// hop has an established session and announces an accepted route
// covering the prefix: when the session drops or the route is withdrawn
// (or rejected on a recheck), the path is withdrawn at once, and it comes
// back when the route does. A seller with several routers of a family
// keeps the trade delivered while any can: the path goes through the
// first of the trade's routers (Trade.NextHop4 or NextHop6, then
// Trade.Standby) that can deliver it, and moves back when a preferred one
// can again.
//
// # Delivery record
//
// After every change the route server judges each trade on each of its
// buyer's sessions ([Server.Deliveries]) and reports what changed through
// [Server.OnDelivery]: delivered, or why not and whom it falls on (the
// buyer's session down: the buyer; the seller's session, route or AS path:
// the seller). The arbiter keeps it (arbiter/delivery) and bills by it. A path never changes buyer, so a change to it
// (another trade of the same buyer on it, a new AS_PATH) replaces it in
// place under the same identifier.
//
// A buyer's router can match the scheme, for example to prefer or tag
// bought routes. BIRD 2:
//
//	filter bwx_in {
//	    if (65000, 1, 64501) ~ bgp_large_community then { bgp_local_pref = 200; accept; }
//	    reject;
//	}
//
// FRR:
//
//	bgp large-community-list standard BWX-BOUGHT permit 65000:1:64501
//	route-map BWX-IN permit 10
//	 match large-community BWX-BOUGHT
//	 set local-preference 200
//
// (65000 the route server's ASN, 64501 the buyer's.)
//
// A path whose AS_PATH holds the buyer's own ASN (the seller reaches the
// prefix through the buyer) is not sent to that buyer: BGP loop
// prevention, and the buyer could not use it anyway.
//
// # GoBGP v3 behaviour this package relies on or works around
//
//   - GoBGP keeps a session that went down idle for 5 s before it accepts
//     the router's next connection: a member is back at the earliest 5 s
//     after a drop.
//   - StopBgp resets the global configuration while the goroutines of the
//     sessions it closes still read it (a data race): Stop deletes the
//     sessions first and waits for GoBGP to report each one gone.
//   - Serve never returns: Stop ends its goroutine through GoBGP's timing
//     hook once the last management call is done, which also releases a
//     thread RunIn put in a network namespace.
//   - The route selection options are package variables every BgpServer
//     writes when it starts: run one Server (or other GoBGP) per process.
//   - The last state event of a deleted session comes with its type unset.
//   - GoBGP only warns when it cannot set a TCP MD5 key: AddMember refuses
//     a password the kernel does not support.
package routeserver
