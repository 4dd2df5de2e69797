package e2e

import (
	"os"

	"github.com/openqps/openqps/internal/config"
)

// testTransport sets the transport section of a test's configuration from
// OPENQPS_TEST_UPSTREAM and OPENQPS_TEST_RAW_SOCKETS when they are set:
// scripts/test.sh runs the attack tables and the websocket tests a second
// time through net/http.Transport with raw sockets off, so both
// transports are held to every row.
func testTransport(cfg *config.Config) {
	if v := os.Getenv("OPENQPS_TEST_UPSTREAM"); v != "" {
		cfg.Transport.Upstream = v
	}
	if v := os.Getenv("OPENQPS_TEST_RAW_SOCKETS"); v != "" {
		cfg.Transport.RawSockets = v
	}
}
