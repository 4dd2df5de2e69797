package console

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/openqps/openqps/internal/session"
)

// sessionRow is one line of the sessions page. It carries no session id:
// Handle is the id sealed for the "end" button.
type sessionRow struct {
	VP, Directory, User, Attributes, Hash, Handle string
	Created, LastUsed                             time.Time
	Websockets                                    int
}

type sessionsData struct {
	VPs                 []vpOption
	VP, Directory, User string
	Rows                []sessionRow
	Next                string // query of the next page; "" after the last
	First               bool
}

type vpOption struct {
	Value, Name string
	Selected    bool
}

// allVPs is the vp filter's value for every virtual proxy, defaultVP the
// one for the default virtual proxy (whose prefix is empty).
const (
	allVPs    = "*"
	defaultVP = "/"
)

func (c *Console) sessions(k *call) {
	q := k.r.URL.Query()
	vp := q.Get("vp")
	if vp == "" {
		vp = allVPs
	}
	f := session.PageFilter{AnyPrefix: vp == allVPs, UserDirectory: strings.TrimSpace(q.Get("dir")), UserID: strings.TrimSpace(q.Get("user"))}
	if vp == defaultVP {
		f.Prefix = ""
	} else if vp != allVPs {
		f.Prefix = vp
	}
	d := sessionsData{VP: vp, Directory: f.UserDirectory, User: f.UserID, First: q.Get("cursor") == ""}
	d.VPs = append(d.VPs, vpOption{allVPs, "all virtual proxies", vp == allVPs})
	for _, v := range k.cfg.VirtualProxies {
		val := v.Prefix
		if val == "" {
			val = defaultVP
		}
		d.VPs = append(d.VPs, vpOption{val, vpName(v.Prefix), vp == val})
	}
	list, next, err := c.page(k.r.Context(), f, q.Get("cursor"))
	if err != nil {
		c.refuse(k.w, k.r, k.cr, http.StatusServiceUnavailable, "sessions could not be listed", err.Error())
		return
	}
	for _, s := range list {
		handle, err := c.seal(k.r.Context(), s.Prefix, s.ID)
		if err != nil {
			c.refuse(k.w, k.r, k.cr, http.StatusServiceUnavailable, "session store unavailable", "retry shortly")
			return
		}
		var at []string
		for _, a := range s.Attributes {
			at = append(at, a.Key+"="+a.Value)
		}
		row := sessionRow{VP: s.Prefix, Directory: s.UserDirectory, User: s.UserID, Attributes: strings.Join(at, ", "),
			Hash: session.Redact(s.ID), Handle: handle, Created: s.Created, LastUsed: s.LastUsed}
		if c.opts.Websockets != nil {
			row.Websockets = c.opts.Websockets(s.Prefix, s.ID)
		}
		d.Rows = append(d.Rows, row)
	}
	if next != "" {
		nq := url.Values{"vp": {vp}, "dir": {f.UserDirectory}, "user": {f.UserID}, "cursor": {next}}
		d.Next = nq.Encode()
	}
	msg := q.Get("done")
	if !hmac.Equal([]byte(q.Get("sig")), []byte(doneSig(k, msg))) {
		msg = "" // not what an action of this admin said: a link may not put words in the page
	}
	c.render(k, http.StatusOK, "sessions", "Sessions", d, msg, false)
}

func vpName(p string) string {
	if p == "" {
		return "(default)"
	}
	return p
}

// page is one page of sessions: from the store's cursor when it has one
// (memory, embedded); otherwise (Redis) from List, whose cursor is an
// offset and which reads the virtual proxy's index whole. With a virtual
// proxy and a user named, the store's user index answers.
func (c *Console) page(ctx context.Context, f session.PageFilter, cursor string) ([]session.Session, string, error) {
	if !f.AnyPrefix && f.UserDirectory != "" && f.UserID != "" {
		if cursor != "" {
			return nil, "", nil
		}
		list, err := c.opts.Store.ByUser(ctx, f.Prefix, f.UserDirectory, f.UserID)
		return list, "", err
	}
	if p, ok := c.opts.Store.(session.Pager); ok {
		return p.Page(ctx, f, cursor, pageSize)
	}
	offset := 0
	if cursor != "" {
		n, err := strconv.Atoi(cursor)
		if err != nil || n < 0 {
			return nil, "", fmt.Errorf("page cursor %q is not one a page gave", cursor)
		}
		offset = n
	}
	var prefixes []string
	if f.AnyPrefix {
		for _, v := range c.opts.Config().VirtualProxies {
			prefixes = append(prefixes, v.Prefix)
		}
	} else {
		prefixes = []string{f.Prefix}
	}
	var all []session.Session
	for _, p := range prefixes {
		list, err := c.opts.Store.List(ctx, p)
		if err != nil {
			return nil, "", err
		}
		for _, s := range list {
			if (f.UserDirectory == "" || strings.EqualFold(s.UserDirectory, f.UserDirectory)) && (f.UserID == "" || strings.EqualFold(s.UserID, f.UserID)) {
				all = append(all, s)
			}
		}
	}
	if offset >= len(all) {
		return nil, "", nil
	}
	end := min(offset+pageSize, len(all))
	next := ""
	if end < len(all) {
		next = strconv.Itoa(end)
	}
	return all[offset:end], next, nil
}

// endSession ends one session; its websockets get QPS's logout notice
// from the front end, which watches the store.
func (c *Console) endSession(k *call) {
	prefix, id, err := c.unseal(k.r.Context(), k.r.PostForm.Get("session"))
	if err != nil {
		c.refuse(k.w, k.r, k.cr, http.StatusBadRequest, "unknown session", err.Error()+": use the button of the sessions page")
		return
	}
	s, err := c.opts.Store.Delete(k.r.Context(), prefix, id)
	msg := ""
	switch {
	case errors.Is(err, session.ErrNotFound):
		msg = "That session had already ended."
	case err != nil:
		c.refuse(k.w, k.r, k.cr, http.StatusServiceUnavailable, "session store unavailable", "the session was not ended; retry shortly")
		return
	default:
		c.opts.Log.Info("session ended from the console", "event", "console.session_ended", "vp", prefix,
			"user_directory", s.UserDirectory, "user_id", s.UserID, "session", session.Redact(id), "admin", k.cr.Session.UserDirectory+`\`+k.cr.Session.UserID)
		msg = fmt.Sprintf("Ended the session of %s\\%s in %s.", s.UserDirectory, s.UserID, vpName(prefix))
	}
	c.back(k, msg)
}

// endUser ends every session of a user in a virtual proxy.
func (c *Console) endUser(k *call) {
	f := k.r.PostForm
	prefix := f.Get("vp")
	if _, ok := k.cfg.VirtualProxy(prefix); !ok {
		c.refuse(k.w, k.r, k.cr, http.StatusBadRequest, "unknown virtual proxy", fmt.Sprintf("no virtual proxy has the prefix %q", prefix))
		return
	}
	list, err := c.opts.Store.DeleteUser(k.r.Context(), prefix, f.Get("dir"), f.Get("user"))
	if err != nil {
		c.refuse(k.w, k.r, k.cr, http.StatusServiceUnavailable, "session store unavailable", "the sessions were not ended; retry shortly")
		return
	}
	c.opts.Log.Info("user logged out from the console", "event", "console.user_logged_out", "vp", prefix,
		"user_directory", f.Get("dir"), "user_id", f.Get("user"), "sessions", len(list), "admin", k.cr.Session.UserDirectory+`\`+k.cr.Session.UserID)
	c.back(k, fmt.Sprintf("Ended %d session(s) of %s\\%s in %s.", len(list), f.Get("dir"), f.Get("user"), vpName(prefix)))
}

// back sends the browser to the sessions page after an action (POST,
// redirect, GET), with the filter it had, saying what was done.
func (c *Console) back(k *call, msg string) {
	f := k.r.PostForm
	q := url.Values{"done": {msg}, "sig": {doneSig(k, msg)}}
	for _, name := range []string{"vp", "dir", "user"} {
		if v := f.Get("f" + name); v != "" {
			q.Set(name, v)
		}
	}
	http.Redirect(k.w, k.r, k.cr.Base+"/sessions?"+q.Encode(), http.StatusSeeOther)
}

// doneSig signs what an action reports under the admin's CSRF token, so
// that only the console's own redirect shows a message.
func doneSig(k *call, msg string) string {
	m := hmac.New(sha256.New, []byte(k.csrf))
	m.Write([]byte(msg))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
