//go:build pins

// Package pins keeps the libraries the architecture settled on pinned in
// go.mod before the code that uses them lands (route server, agent routes,
// capture, probing). The build tag keeps it out of every binary; `go mod tidy`
// still sees it. Remove an import here once real code imports the package.
package pins

import (
	_ "github.com/prometheus-community/pro-bing"
)
