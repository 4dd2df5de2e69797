package config

import "strings"

// Log configures logging.
type Log struct {
	Level  string  `yaml:"level"`  // debug | info | warn | error
	Format string  `yaml:"format"` // text | json
	Qlik   QlikLog `yaml:"qlik"`
}

// QlikLog writes the audit events also as Qlik Sense Proxy Service's
// AuditActivity and AuditSecurity logs (tab-separated, Qlik's fields),
// for Qlik's monitoring apps and SIEM parsers built on QPS's files.
type QlikLog struct {
	Dir       string `yaml:"dir"`         // where the files go; empty: off
	Hostname  string `yaml:"hostname"`    // <MachineName> in file names and rows; default the host's name
	MaxFileMB int    `yaml:"max_file_mb"` // a file is rolled before it passes this size (and daily); default 10
}

func (l *Log) setDefaults() {
	if l.Level == "" {
		l.Level = "info"
	}
	if l.Format == "" {
		l.Format = "text"
	}
	if l.Qlik.MaxFileMB == 0 {
		l.Qlik.MaxFileMB = 10
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
	if l.Qlik.MaxFileMB < 1 {
		v.fail("log.qlik.max_file_mb", "must be at least 1 (megabytes)")
	}
	if strings.ContainsAny(l.Qlik.Hostname, `/\:*?"<>|`+"\t\r\n") {
		v.fail("log.qlik.hostname", "is part of the file names: use a plain host name")
	}
}

// Audit is where the audit log (JSON lines) goes. Its events are in the
// process log too; the audit log is a stream of its own for log
// pipelines and SIEM rules, written whatever the log level.
type Audit struct {
	File string `yaml:"file"` // a path, "-" for standard output; empty: no audit stream of its own
}
