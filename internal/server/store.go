package server

import (
	"context"
	"log/slog"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/session"
)

// OpenStore opens the session store the configuration names.
func OpenStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (session.Store, error) {
	switch cfg.Store.Type {
	default:
		// The durable stores are not built yet; until then every type is
		// served from memory, and the log says so.
		if cfg.Store.Type != "memory" {
			log.Warn("store type not available yet, using memory", "type", cfg.Store.Type)
		}
		return session.NewMemory(), nil
	}
}
