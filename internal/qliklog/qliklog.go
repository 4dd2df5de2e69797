// Package qliklog writes the proxy's audit events as Qlik Sense Proxy
// Service writes its audit logs, so that Qlik's monitoring apps and SIEM
// parsers built for QPS read them unchanged: two tab-separated files,
// <Hostname>_AuditActivity_Proxy.txt (sessions starting and ending) and
// <Hostname>_AuditSecurity_Proxy.txt (logins, tickets, refusals), each
// starting with a header line of Qlik's field names, in Qlik's field order,
// rolled daily and by size into <name>_<YYYY-MM-DDTHH.mm.ss>Z.log as QPS
// rolls them.
//
// The rows come from the same structured log records the audit log picks
// its events from (records with an "event" attribute): Handler wraps the
// process's slog.Handler. Session ids and tickets reach it only as
// session.Redact hashes, and it writes them only as salted hashes of
// those (ProxySessionId, ObjectId), so nothing in these files can be
// joined to a secret without the salt.
package qliklog

import (
	"bufio"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// TimeFormat is Qlik's timestamp, YYYYMMDDThhmmss.fffK, local time with
// its offset, e.g. 20110805T145657.000+0200.
const TimeFormat = "20060102T150405.000-0700"

// rollFormat stamps a rolled file with the UTC time it was closed.
const rollFormat = "2006-01-02T15.04.05"

// maxSequence is where Sequence# wraps back to 1, as in QPS.
const maxSequence = 2147483647

// ActivityFields and SecurityFields are the header lines' field names, in
// the order QPS writes them.
var (
	ActivityFields = []string{"Sequence#", "ProductVersion", "Timestamp", "Hostname", "Id", "Description",
		"ProxySessionId", "ProxyPackageId", "RequestSequenceId", "UserDirectory", "UserId", "ObjectId", "ObjectName",
		"Service", "Origin", "Context", "Command", "Result", "Message", "TargetHost", "VirtualProxy", "Id2"}
	SecurityFields = []string{"Sequence#", "ProductVersion", "Timestamp", "Hostname", "Id", "Description",
		"ProxySessionId", "ProxyPackageId", "RequestSequenceId", "UserDirectory", "UserId", "ObjectId", "ObjectName",
		"SecurityClass", "Service", "Origin", "Context", "ClientHostAddress", "Command", "Result", "Message",
		"TargetHost", "VirtualProxy", "Id2"}
)

// Options configure Open.
type Options struct {
	Dir            string // where the files are written; created when missing
	Hostname       string // <MachineName> in the file names and the Hostname field
	ProductVersion string // the ProductVersion field
	// Salt keys the hashes written as ProxySessionId and ObjectId. Keep
	// it across restarts (the server keeps it in its data directory) so
	// that one session has one ProxySessionId in every file.
	Salt []byte
	// MaxFileBytes rolls a file before a row would take it past this
	// size; 0 means 10 MB.
	MaxFileBytes int64
	// Now is the clock that decides the daily roll and stamps rolled
	// files; nil is time.Now. Rows carry their record's time.
	Now func() time.Time
}

// Logs are the two open Qlik-format files. Safe for concurrent use.
type Logs struct {
	opts     Options
	activity *file
	security *file
}

// Open creates Dir when needed and opens (appending to) both files. A
// file left from a previous day is rolled first.
func Open(opts Options) (*Logs, error) {
	if opts.Dir == "" {
		return nil, errors.New("qliklog: no directory")
	}
	if opts.Hostname == "" {
		return nil, errors.New("qliklog: no host name")
	}
	if len(opts.Salt) == 0 {
		return nil, errors.New("qliklog: no salt")
	}
	if opts.MaxFileBytes <= 0 {
		opts.MaxFileBytes = 10 << 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("qliklog: %w", err)
	}
	l := &Logs{opts: opts}
	var err error
	if l.activity, err = openFile(opts, "AuditActivity", ActivityFields); err != nil {
		return nil, err
	}
	if l.security, err = openFile(opts, "AuditSecurity", SecurityFields); err != nil {
		l.activity.close()
		return nil, err
	}
	return l, nil
}

// Close flushes and closes both files.
func (l *Logs) Close() error {
	return errors.Join(l.activity.close(), l.security.close())
}

// ActivityPath and SecurityPath are the files being written now.
func (l *Logs) ActivityPath() string { return l.activity.path }
func (l *Logs) SecurityPath() string { return l.security.path }

// hash is the salted hash written in place of a redacted session id or
// ticket; "0", as in QPS, when there is none.
func (l *Logs) hash(redacted string) string {
	if redacted == "" {
		return "0"
	}
	m := hmac.New(sha256.New, l.opts.Salt)
	m.Write([]byte(redacted))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// file is one Qlik log: the open .txt, its size, the day it belongs to
// and the row counter.
type file struct {
	opts   Options
	path   string
	header string
	mu     sync.Mutex
	f      *os.File
	w      *bufio.Writer
	size   int64
	day    string // YYYY-MM-DD of the rows in the file, local time
	seq    int64
}

func openFile(opts Options, logType string, fields []string) (*file, error) {
	f := &file{
		opts:   opts,
		path:   filepath.Join(opts.Dir, opts.Hostname+"_"+logType+"_Proxy.txt"),
		header: strings.Join(fields, "\t") + "\r\n",
	}
	if st, err := os.Stat(f.path); err == nil && st.Size() > 0 && st.ModTime().Format(time.DateOnly) != opts.Now().Format(time.DateOnly) {
		if err := f.rename(); err != nil {
			return nil, err
		}
	}
	if err := f.open(); err != nil {
		return nil, err
	}
	return f, nil
}

// open opens path for appending and writes the header into an empty file.
func (f *file) open() error {
	fh, err := os.OpenFile(f.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("qliklog: %w", err)
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return fmt.Errorf("qliklog: %w", err)
	}
	f.f, f.w, f.size, f.day = fh, bufio.NewWriter(fh), st.Size(), f.opts.Now().Format(time.DateOnly)
	if f.size == 0 {
		n, _ := f.w.WriteString(f.header)
		f.size += int64(n)
	}
	return nil
}

// rename moves the closed .txt aside as QPS does:
// <name>_<YYYY-MM-DDTHH.mm.ss>Z.log, with the UTC time it was closed.
func (f *file) rename() error {
	base := strings.TrimSuffix(f.path, ".txt") + "_" + f.opts.Now().UTC().Format(rollFormat) + "Z"
	target := base + ".log"
	for i := 1; ; i++ { // two rolls within one second
		if _, err := os.Lstat(target); errors.Is(err, os.ErrNotExist) {
			break
		}
		target = base + "_" + strconv.Itoa(i) + ".log"
	}
	if err := os.Rename(f.path, target); err != nil {
		return fmt.Errorf("qliklog: roll %s: %w", f.path, err)
	}
	return nil
}

// write appends one row, given its fields after Sequence#, rolling the
// file first when the day changed or the row would pass the size limit.
// Each row is flushed: these are audit records, and a crash must not
// lose the ones already acknowledged.
func (f *file) write(fields []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f == nil {
		return errors.New("qliklog: closed")
	}
	f.seq++
	if f.seq > maxSequence {
		f.seq = 1
	}
	row := strconv.FormatInt(f.seq, 10) + "\t" + strings.Join(fields, "\t") + "\r\n"
	if f.day != f.opts.Now().Format(time.DateOnly) || (f.size > int64(len(f.header)) && f.size+int64(len(row)) > f.opts.MaxFileBytes) {
		if err := f.roll(); err != nil {
			return err
		}
	}
	n, err := f.w.WriteString(row)
	f.size += int64(n)
	if err == nil {
		err = f.w.Flush()
	}
	return err
}

func (f *file) roll() error {
	if err := f.closeFile(); err != nil {
		return err
	}
	if err := f.rename(); err != nil {
		return err
	}
	return f.open()
}

func (f *file) closeFile() error {
	err := f.w.Flush()
	return errors.Join(err, f.f.Close())
}

func (f *file) close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f == nil {
		return nil
	}
	err := f.closeFile()
	f.f = nil
	return err
}

// newGUID is a random (version 4) GUID for the Id field.
func newGUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// clean keeps a value on its row and in its column: tabs and line breaks
// become spaces.
func clean(s string) string {
	if !strings.ContainsAny(s, "\t\r\n") {
		return s
	}
	return strings.NewReplacer("\t", " ", "\r", " ", "\n", " ").Replace(s)
}
