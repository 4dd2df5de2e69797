package config

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

func (l *Log) setDefaults() {
	if l.Level == "" {
		l.Level = "info"
	}
	if l.Format == "" {
		l.Format = "text"
	}
}

func (v *validator) log(l *Log) {
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		v.fail("log.level", "use debug, info, warn or error")
	}
	switch l.Format {
	case "text", "json":
	default:
		v.fail("log.format", "use text or json")
	}
}

// Audit is where the audit log (JSON lines) goes. Its events are in the
// process log too; the audit log is a stream of its own for log
// pipelines and SIEM rules, written whatever the log level.
type Audit struct {
	File string `yaml:"file"` // a path, "-" for standard output; empty: no audit stream of its own
}
