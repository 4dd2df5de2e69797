package config

import (
	"strings"
	"testing"
)

const loggingVP = "virtual_proxies:\n  - prefix: a\n    backends: [\"http://a\"]\n"

func TestQlikLogDefaultsAndKeys(t *testing.T) {
	c, err := Parse([]byte("log:\n  qlik:\n    dir: /var/log/openqps/qlik\n    hostname: NODE1\n" + loggingVP))
	if err != nil {
		t.Fatal(err)
	}
	if q := c.Log.Qlik; q.Dir != "/var/log/openqps/qlik" || q.Hostname != "NODE1" || q.MaxFileMB != 10 {
		t.Fatalf("log.qlik = %+v", q)
	}
	if c, _ := Parse([]byte(loggingVP)); c.Log.Qlik.Dir != "" {
		t.Fatalf("log.qlik.dir defaults to %q, want off", c.Log.Qlik.Dir)
	}
}

func TestQlikLogErrorsNameKeyAndLine(t *testing.T) {
	for yaml, want := range map[string]string{
		"log:\n  qlik:\n    max_file_mb: -1\n": "line 3: log.qlik.max_file_mb: must be at least 1",
		"log:\n  qlik:\n    hostname: a/b\n":   "line 3: log.qlik.hostname: is part of the file names",
		"log:\n  qlik:\n    directory: /tmp\n": "line 3: key directory is not a known key",
	} {
		if _, err := Parse([]byte(yaml + loggingVP)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", yaml, err, want)
		}
	}
}
