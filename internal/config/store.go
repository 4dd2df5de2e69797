package config

import (
	"fmt"
	"time"
)

// Store selects where sessions are kept.
type Store struct {
	Type string `yaml:"type"` // memory | embedded | redis
	// MaxSessions caps the sessions this store holds (adds beyond it are
	// answered 429); 0 is no cap. With Redis the cap is per node's view of
	// the shared count.
	MaxSessions int `yaml:"max_sessions"`
	// LastUseFlush is how often last-use times are written to the durable
	// store, and their precision: after a crash a session may expire up
	// to about twice this early. 0 is 5s.
	LastUseFlush time.Duration `yaml:"last_use_flush"`
	Redis        Redis         `yaml:"redis"`
}

// Redis configures the Redis store.
type Redis struct {
	Addresses      []string `yaml:"addresses"`
	SentinelMaster string   `yaml:"sentinel_master"`
	Username       string   `yaml:"username"`
	Password       string   `yaml:"password"`
	TLS            bool     `yaml:"tls"`
	KeyPrefix      string   `yaml:"key_prefix"`
}

// Sessions holds settings shared by all virtual proxies.
type Sessions struct {
	// MinIDLength is the shortest SessionId the session API accepts from
	// a login module.
	MinIDLength int `yaml:"min_id_length"`
	// TicketTTL is how long a ticket can be redeemed (QPS: one minute).
	TicketTTL time.Duration `yaml:"ticket_ttl"`
	// TargetTTL is how long a targetId (the signed original URL) is valid.
	TargetTTL time.Duration `yaml:"target_ttl"`
	// MaxPerUser caps parallel sessions per user per virtual proxy; 0 is
	// no cap.
	MaxPerUser int `yaml:"max_per_user"`
}

// Defaults of the store and the session settings.
const (
	DefaultMinIDLength = 16
	DefaultTicketTTL   = time.Minute
	DefaultTargetTTL   = 10 * time.Minute
)

func (s *Store) setDefaults() {
	if s.Type == "" {
		s.Type = "embedded"
	}
	if s.Redis.KeyPrefix == "" {
		s.Redis.KeyPrefix = "openqps:"
	}
}

func (v *validator) store(s *Store) {
	switch s.Type {
	case "memory", "embedded":
	case "redis":
		if len(s.Redis.Addresses) == 0 {
			v.fail("store.redis.addresses", "needs at least one host:port when store.type is redis")
		}
	default:
		v.fail("store.type", fmt.Sprintf("%q is not a store; use memory, embedded or redis", s.Type))
	}
	if s.MaxSessions < 0 {
		v.fail("store.max_sessions", "must be 0 (no cap) or more")
	}
	if s.LastUseFlush < 0 {
		v.fail("store.last_use_flush", "must be positive, e.g. 5s")
	}
}

func (s *Sessions) setDefaults() {
	if s.MinIDLength == 0 {
		s.MinIDLength = DefaultMinIDLength
	}
	if s.TicketTTL == 0 {
		s.TicketTTL = DefaultTicketTTL
	}
	if s.TargetTTL == 0 {
		s.TargetTTL = DefaultTargetTTL
	}
}

func (v *validator) sessions(s *Sessions) {
	if s.MinIDLength < 1 {
		v.fail("sessions.min_id_length", "must be at least 1")
	}
	if s.TicketTTL < 0 || s.TargetTTL < 0 {
		v.fail("sessions", "ticket_ttl and target_ttl must be positive")
	}
	if s.MaxPerUser < 0 {
		v.fail("sessions.max_per_user", "must be 0 (no cap) or more")
	}
}
