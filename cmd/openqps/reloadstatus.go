package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// reloadStatus is what a serving openqps writes after each reload it was
// signalled to make, so that `openqps reload` in its pid form can report
// what the server decided, not only that a signal was sent.
type reloadStatus struct {
	PID            int    `json:"pid"`
	Seq            uint64 `json:"seq"` // counts the reloads of this process
	OK             bool   `json:"ok"`
	Error          string `json:"error,omitempty"`
	VirtualProxies int    `json:"virtual_proxies,omitempty"`
}

// reloadStatusFile is where the process with pidFile reports its reloads.
func reloadStatusFile(pidFile string) string { return pidFile + ".reload" }

// writeReloadStatus replaces the status file in one rename, so a reader
// never sees half of it.
func writeReloadStatus(path string, st reloadStatus) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".reload-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func readReloadStatus(path string) (reloadStatus, error) {
	var st reloadStatus
	b, err := os.ReadFile(path)
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

// reloadWait bounds how long `openqps reload` waits for the server's
// verdict: a reload reads one file and builds the routes, but a server
// under heavy load may take a moment to get to it.
const reloadWait = 30 * time.Second

// awaitReload waits until the process pid reports a reload newer than
// before, and returns its status.
func awaitReload(path string, pid int, before reloadStatus) (reloadStatus, error) {
	deadline := time.Now().Add(reloadWait)
	for {
		st, err := readReloadStatus(path)
		if err == nil && st.PID == pid && (before.PID != pid || st.Seq > before.Seq) {
			return st, nil
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("sent SIGHUP to openqps (pid %d), but it reported no result within %s in %s; its log says what happened", pid, reloadWait, path)
		}
		time.Sleep(50 * time.Millisecond) // a file has no change notice in the standard library
	}
}
