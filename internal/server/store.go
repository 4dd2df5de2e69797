package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/session"
	"github.com/openqps/openqps/internal/session/embedded"
	"github.com/openqps/openqps/internal/session/redis"
)

// OpenStore opens the session store the configuration names: memory,
// the embedded durable store in the data directory, or Redis.
func OpenStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (session.Store, error) {
	sc := cfg.Store
	switch sc.Type {
	case "memory":
		log.Warn("sessions are kept in memory only: a restart logs everyone out", "store", "memory")
		return session.NewMemory(session.WithMaxSessions(sc.MaxSessions)), nil
	case "embedded":
		path := filepath.Join(cfg.DataDir, embedded.FileName)
		start := time.Now()
		s, err := embedded.Open(path, embedded.Options{FlushInterval: sc.LastUseFlush, MaxSessions: sc.MaxSessions})
		if err != nil {
			return nil, err
		}
		log.Info("session store opened", "store", "embedded", "file", path, "sessions", s.Len(),
			"load_ms", time.Since(start).Milliseconds())
		return s, nil
	case "redis":
		rc := sc.Redis
		o := redis.Options{
			Addresses: rc.Addresses, SentinelMaster: rc.SentinelMaster, Username: rc.Username, Password: rc.Password,
			KeyPrefix: rc.KeyPrefix, UseGranularity: sc.LastUseFlush, MaxSessions: sc.MaxSessions,
		}
		if rc.TLS {
			o.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		s, err := redis.Open(o)
		if err != nil {
			return nil, err
		}
		log.Info("session store opened", "store", "redis", "addresses", rc.Addresses, "key_prefix", rc.KeyPrefix)
		return s, nil
	}
	return nil, fmt.Errorf("store.type %q is not available", sc.Type)
}
