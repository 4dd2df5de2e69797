package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/pki"
	"github.com/openqps/openqps/internal/qpsapi"
	"github.com/openqps/openqps/internal/session"
)

// clientFlags are shared by the commands that call the trusted API.
type clientFlags struct {
	api     string
	certs   string
	vp      string
	jsonOut bool
}

func (f *clientFlags) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.api, "api", "https://localhost:4243", "base URL of the trusted API")
	cmd.PersistentFlags().StringVar(&f.certs, "certs", filepath.Join(config.DefaultDataDir, "certs"), "directory with client.pem, client_key.pem and root.pem")
	cmd.PersistentFlags().StringVar(&f.vp, "vp", "", "virtual proxy prefix (empty: the default virtual proxy)")
	cmd.PersistentFlags().BoolVar(&f.jsonOut, "json", false, "print the API's JSON answer")
}

func (f *clientFlags) client() (*qpsapi.Client, error) {
	cert, roots, err := pki.LoadClient(f.certs)
	if err != nil {
		return nil, fmt.Errorf("%w (run `openqps serve` once to create the certificates, or point --certs at them)", err)
	}
	return qpsapi.NewClient(f.api, &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, MinVersion: tls.VersionTLS12}), nil
}

func (f *clientFlags) prefix() string { return strings.Trim(f.vp, "/") }

func timeout(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), 30*time.Second)
}

// splitUser reads DOMAIN\User1 (also DOMAIN/User1).
func splitUser(s string) (dir, user string, err error) {
	if d, u, ok := strings.Cut(s, `\`); ok {
		return d, u, nil
	}
	if d, u, ok := strings.Cut(s, "/"); ok {
		return d, u, nil
	}
	return "", "", fmt.Errorf("give the user as DIRECTORY\\USERID, e.g. 'DOMAIN\\User1', not %q", s)
}

func parseAttrs(list []string) ([]session.Attribute, error) {
	var out []session.Attribute
	for _, a := range list {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--attr takes Name=Value, e.g. Group=Sales, not %q", a)
		}
		out = append(out, session.Attribute{Key: k, Value: v})
	}
	return out, nil
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintln(w, string(b))
	return nil
}

func printSessions(w io.Writer, list []qpsapi.SessionInfo) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no sessions")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SESSION\tUSER\tATTRIBUTES")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\\%s\t%s\n", s.SessionId, s.UserDirectory, s.UserId, attrString(s.Attributes))
	}
	tw.Flush()
}

func attrString(attrs qpsapi.Attributes) string {
	var parts []string
	for _, a := range attrs {
		parts = append(parts, a.Key+"="+a.Value)
	}
	return strings.Join(parts, ",")
}

func sessionCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{Use: "session", Short: "Add, read, list and delete sessions through the trusted API"}
	f.register(cmd)

	var user, id, cookie string
	var attrs []string
	add := &cobra.Command{
		Use:   "add --user 'DOMAIN\\User1' [--id ID] [--attr Group=Sales]",
		Short: "Create a session (POST /qps/{vp}/session) and print the cookie to set",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, uid, err := splitUser(user)
			if err != nil {
				return err
			}
			at, err := parseAttrs(attrs)
			if err != nil {
				return err
			}
			if id == "" {
				id = session.NewID()
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			ctx, cancel := timeout(cmd)
			defer cancel()
			s, err := c.AddSession(ctx, f.prefix(), qpsapi.UserRequest{UserDirectory: dir, UserId: uid, Attributes: at, SessionId: id})
			if err != nil {
				return err
			}
			if f.jsonOut {
				return printJSON(cmd.OutOrStdout(), s)
			}
			if cookie == "" {
				cookie = config.CookieName(f.prefix())
			}
			fmt.Fprintf(cmd.OutOrStdout(), "session %s\ncookie  %s=%s\n", s.SessionId, cookie, s.SessionId)
			return nil
		},
	}
	add.Flags().StringVar(&user, "user", "", "the user, as DIRECTORY\\USERID (required)")
	add.Flags().StringVar(&id, "id", "", "session id to use (default: 128 random bits)")
	add.Flags().StringArrayVar(&attrs, "attr", nil, "attribute Name=Value (repeatable)")
	add.Flags().StringVar(&cookie, "cookie", "", "cookie name to print (default: X-Qlik-Session[-<vp>])")
	add.MarkFlagRequired("user")

	get := &cobra.Command{
		Use: "get ID", Short: "Show a session (GET /qps/{vp}/session/{id})", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			ctx, cancel := timeout(cmd)
			defer cancel()
			s, err := c.GetSession(ctx, f.prefix(), args[0])
			if err != nil {
				return err
			}
			if s == nil {
				return fmt.Errorf("no session %q in virtual proxy %q", args[0], f.prefix())
			}
			if f.jsonOut {
				return printJSON(cmd.OutOrStdout(), s)
			}
			printSessions(cmd.OutOrStdout(), []qpsapi.SessionInfo{*s})
			return nil
		},
	}
	rm := &cobra.Command{
		Use: "rm ID", Short: "End a session (DELETE /qps/{vp}/session/{id})", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			ctx, cancel := timeout(cmd)
			defer cancel()
			s, err := c.DeleteSession(ctx, f.prefix(), args[0])
			if err != nil {
				return err
			}
			if f.jsonOut {
				return printJSON(cmd.OutOrStdout(), s)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted session %s of %s\\%s\n", s.SessionId, s.UserDirectory, s.UserId)
			return nil
		},
	}
	ls := &cobra.Command{
		Use: "ls", Short: "List the sessions of a virtual proxy (GET /qps/{vp}/session)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			ctx, cancel := timeout(cmd)
			defer cancel()
			list, err := c.ListSessions(ctx, f.prefix())
			if err != nil {
				return err
			}
			if f.jsonOut {
				return printJSON(cmd.OutOrStdout(), list)
			}
			printSessions(cmd.OutOrStdout(), list)
			return nil
		},
	}
	cmd.AddCommand(add, get, rm, ls)
	return cmd
}

func userCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{Use: "user", Short: "List or log out a user's sessions through the trusted API"}
	f.register(cmd)
	ls := &cobra.Command{
		Use: "ls 'DOMAIN\\User1'", Short: "List a user's sessions (GET /qps/{vp}/user/{dir}/{id})", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, uid, err := splitUser(args[0])
			if err != nil {
				return err
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			ctx, cancel := timeout(cmd)
			defer cancel()
			list, err := c.UserSessions(ctx, f.prefix(), dir, uid)
			if err != nil {
				return err
			}
			if f.jsonOut {
				return printJSON(cmd.OutOrStdout(), list)
			}
			printSessions(cmd.OutOrStdout(), list)
			return nil
		},
	}
	logout := &cobra.Command{
		Use: "logout 'DOMAIN\\User1'", Short: "End all of a user's sessions (DELETE /qps/{vp}/user/{dir}/{id})", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, uid, err := splitUser(args[0])
			if err != nil {
				return err
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			ctx, cancel := timeout(cmd)
			defer cancel()
			list, err := c.LogoutUser(ctx, f.prefix(), dir, uid)
			if err != nil {
				return err
			}
			if f.jsonOut {
				return printJSON(cmd.OutOrStdout(), list)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "logged out %s\\%s: %d session(s) ended\n", dir, uid, len(list))
			return nil
		},
	}
	cmd.AddCommand(ls, logout)
	return cmd
}

func ticketCommand() *cobra.Command {
	var f clientFlags
	var user, targetID string
	var attrs []string
	cmd := &cobra.Command{
		Use:   "ticket --user 'DOMAIN\\User1' [--target-id ID] [--attr Group=Sales]",
		Short: "Ask for a one-minute login ticket (POST /qps/{vp}/ticket)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, uid, err := splitUser(user)
			if err != nil {
				return err
			}
			at, err := parseAttrs(attrs)
			if err != nil {
				return err
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			ctx, cancel := timeout(cmd)
			defer cancel()
			t, err := c.Ticket(ctx, f.prefix(), qpsapi.UserRequest{UserDirectory: dir, UserId: uid, Attributes: at, TargetId: targetID})
			if err != nil {
				return err
			}
			if f.jsonOut {
				return printJSON(cmd.OutOrStdout(), t)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ticket %s\n", t.Ticket)
			if t.TargetUri != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "target %s\n", *t.TargetUri)
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&user, "user", "", "the user, as DIRECTORY\\USERID (required)")
	cmd.Flags().StringVar(&targetID, "target-id", "", "targetId the proxy gave the login module")
	cmd.Flags().StringArrayVar(&attrs, "attr", nil, "attribute Name=Value (repeatable)")
	cmd.MarkFlagRequired("user")
	return cmd
}

func certsCommand() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Create (if missing) and show the certificates for curl, Postman, PowerShell and login modules",
		Long: `certs creates, when missing, and lists the certificates of a data directory:
<data-dir>/certs holds what login modules need (copy it to their hosts);
<data-dir>/ca holds the CA's private key, which never leaves this host.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, created, err := pki.Ensure(pki.CertsDir(dataDir), pki.CADir(dataDir))
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if b.MovedCAKey != "" {
				fmt.Fprintf(out, "moved the CA private key from %s to %s; copies of %s made before still hold it: delete root_key.pem from them\n\n",
					b.MovedCAKey, filepath.Join(b.CADir, "root_key.pem"), b.Dir)
			}
			state := "existing"
			if created {
				state = "created"
			}
			fmt.Fprintf(out, "certificates (%s) in %s, to copy to login-module hosts:\n", state, b.Dir)
			for _, n := range []string{"root.pem", "client.pem", "client_key.pem", "client.pfx", "server.pem", "server_key.pem"} {
				fmt.Fprintf(out, "  %s\n", filepath.Join(b.Dir, n))
			}
			fmt.Fprintf(out, "the CA private key, which stays on this host (it signs new certificates):\n  %s\n", filepath.Join(b.CADir, "root_key.pem"))
			fmt.Fprintf(out, "\ncurl --cacert %[1]s/root.pem --cert %[1]s/client.pem --key %[1]s/client_key.pem \\\n"+
				"  -H 'X-Qlik-Xrfkey: 0123456789abcdef' 'https://localhost:4243/qps/alive?xrfkey=0123456789abcdef'\n", b.Dir)
			fmt.Fprintln(out, "\nclient.pfx has an empty password (PowerShell: Get-PfxCertificate, Postman: Settings > Certificates).")
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", config.DefaultDataDir, "data directory")
	return cmd
}
