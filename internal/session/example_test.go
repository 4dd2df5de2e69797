package session_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/openqps/openqps/internal/session"
)

func ExampleNewMemory() {
	store := session.NewMemory()
	defer store.Close()
	ctx := context.Background()

	// What the session API does when a login module posts a session.
	err := store.Add(ctx, session.Session{
		Prefix:        "sales",
		ID:            "aa051074-13a1-4f2a-842b-a64aa4d21001",
		UserDirectory: "DOMAIN",
		UserID:        "User1",
		Attributes:    []session.Attribute{{Key: "Group", Value: "Sales"}, {Key: "Group", Value: "EMEA"}},
		Timeout:       30 * time.Minute,
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	// What the front end does with the session cookie of a request.
	s, err := store.Get(ctx, "sales", "aa051074-13a1-4f2a-842b-a64aa4d21001")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s\\%s %v\n", s.UserDirectory, s.UserID, s.Attributes)

	// The same cookie on another virtual proxy is not a session there.
	_, err = store.Get(ctx, "finance", "aa051074-13a1-4f2a-842b-a64aa4d21001")
	fmt.Println(errors.Is(err, session.ErrNotFound))
	// Output:
	// DOMAIN\User1 [{Group Sales} {Group EMEA}]
	// true
}
