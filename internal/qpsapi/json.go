package qpsapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/openqps/openqps/internal/session"
)

// Attributes is QPS's attribute list: an ordered JSON array of objects,
// e.g. [{"Group":"A"},{"Group":"B"},{"Email":""}]. Keys may repeat, so it
// cannot be a map; order is kept, also within an object of several keys.
type Attributes []session.Attribute

// MarshalJSON writes one single-key object per attribute; [] when empty.
func (a Attributes) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, at := range a {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(at.Key)
		v, _ := json.Marshal(at.Value)
		b.WriteByte('{')
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
		b.WriteByte('}')
	}
	b.WriteByte(']')
	return b.Bytes(), nil
}

// UnmarshalJSON reads an array of objects whose values are strings (numbers
// and booleans are kept as their JSON text). null is an empty list.
func (a *Attributes) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		*a = nil
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("Attributes must be an array of objects such as [{\"Group\":\"Sales\"}]")
	}
	out := Attributes{}
	for dec.More() {
		if tok, err = dec.Token(); err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); !ok || d != '{' {
			return fmt.Errorf("each Attributes entry must be an object such as {\"Group\":\"Sales\"}")
		}
		for dec.More() {
			keyTok, err := dec.Token()
			if err != nil {
				return err
			}
			valTok, err := dec.Token()
			if err != nil {
				return err
			}
			var val string
			switch v := valTok.(type) {
			case string:
				val = v
			case json.Number:
				val = v.String()
			case bool:
				val = fmt.Sprint(v)
			case nil:
				val = ""
			default:
				return fmt.Errorf("attribute %q: value must be a string", keyTok)
			}
			out = append(out, session.Attribute{Key: keyTok.(string), Value: val})
		}
		if _, err := dec.Token(); err != nil { // '}'
			return err
		}
	}
	*a = out
	return nil
}

// SessionInfo is QPS's session struct as the API sends it; the field order is the order every
// QPS document shows and qlik-session-auth's regular expression requires.
type SessionInfo struct {
	UserDirectory string
	UserId        string //nolint:revive // QPS spelling
	Attributes    Attributes
	SessionId     string //nolint:revive // QPS spelling
}

func toJSON(s session.Session) SessionInfo {
	return SessionInfo{
		UserDirectory: s.UserDirectory,
		UserId:        s.UserID,
		Attributes:    Attributes(s.Attributes),
		SessionId:     s.ID,
	}
}

func toJSONList(list []session.Session) []SessionInfo {
	out := make([]SessionInfo, 0, len(list))
	for _, s := range list {
		out = append(out, toJSON(s))
	}
	return out
}

// TicketInfo is the answer of the ticket API.
type TicketInfo struct {
	UserDirectory string
	UserId        string //nolint:revive // QPS spelling
	Attributes    Attributes
	Ticket        string
	TargetUri     *string //nolint:revive // QPS spelling; null without a TargetId
}

// UserRequest is the body of POST session and POST ticket. encoding/json
// matches keys case-insensitively, so userId and USERID work too.
type UserRequest struct {
	UserDirectory string
	UserId        string //nolint:revive // QPS spelling
	Attributes    Attributes
	SessionId     string //nolint:revive // QPS spelling
	TargetId      string //nolint:revive // QPS spelling
}

// errorRequest is the body of POST /qps/error.
type errorRequest struct {
	UserDirectory string
	UserId        string //nolint:revive // QPS spelling
	Message       string
}

// decodeBody reads one JSON object from r and rejects trailing data.
func decodeBody(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	if err := dec.Decode(v); err != nil {
		if err == io.EOF {
			return fmt.Errorf("the body is empty; send a JSON object")
		}
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("unexpected data after the JSON object")
	}
	return nil
}

// cleanUser trims and checks a user directory or user id as QPS does:
// not blank, no backslash.
func cleanUser(field, v string) (string, error) {
	v = strings.TrimSpace(v)
	switch {
	case v == "":
		return "", fmt.Errorf("%s is missing or blank", field)
	case strings.ContainsRune(v, '\\'):
		return "", fmt.Errorf("%s %q contains a backslash, which QPS forbids", field, v)
	case len(v) > 256:
		return "", fmt.Errorf("%s is longer than 256 characters", field)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("%s contains a control character", field)
		}
	}
	return v, nil
}
