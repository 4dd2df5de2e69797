package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/pki"
	"github.com/openqps/openqps/internal/qpsapi"
	"github.com/openqps/openqps/internal/server"
	"github.com/openqps/openqps/internal/session"
)

func reloadCommand() *cobra.Command {
	var configFile, dataDir, pidFile, api, certs string
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Make a running openqps read its configuration file again",
		Long: `reload makes a running openqps read its configuration file again and apply it
to new requests, keeping sessions and open websockets. An invalid file, or one
that changes what needs a restart (e.g. a listen address), is rejected and the
old configuration keeps running.

With --api, reload calls the trusted API (POST /openqps/reload, with the client
certificate in --certs) and prints the result. Otherwise it sends SIGHUP to the
process in the pid file, after checking the file when --config is given, and
waits for the process to report what it decided (in <pid file>.reload). Either
way a rejected reload exits with status 1 and says why.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if api != "" {
				return reloadThroughAPI(cmd, api, certs)
			}
			if configFile != "" {
				cfg, err := config.Load(configFile)
				if err != nil {
					return fmt.Errorf("not reloading: %w", err)
				}
				if dataDir == "" {
					dataDir = cfg.DataDir
				}
			}
			if pidFile == "" {
				if dataDir == "" {
					dataDir = config.DefaultDataDir
				}
				pidFile = filepath.Join(dataDir, "openqps.pid")
			}
			pid, err := readPID(pidFile)
			if err != nil {
				return err
			}
			statusFile := reloadStatusFile(pidFile)
			before, _ := readReloadStatus(statusFile)
			if err := signalReload(pid, pidFile); err != nil {
				return err
			}
			st, err := awaitReload(statusFile, pid, before)
			if err != nil {
				return err
			}
			if !st.OK {
				return fmt.Errorf("reload rejected by openqps (pid %d); the running configuration stays: %s", pid, st.Error)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "reloaded: openqps (pid %d) runs the new configuration (virtual proxies: %d)\n", pid, st.VirtualProxies)
			return nil
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "the configuration file, to check before signalling (and to find data_dir)")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "data directory holding openqps.pid")
	cmd.Flags().StringVar(&pidFile, "pid-file", "", "pid file of the running openqps (default <data_dir>/openqps.pid)")
	cmd.Flags().StringVar(&api, "api", "", "base URL of the trusted API, e.g. https://localhost:4243: reload through it instead of a signal")
	cmd.Flags().StringVar(&certs, "certs", filepath.Join(config.DefaultDataDir, "certs"), "with --api: directory with client.pem, client_key.pem and root.pem")
	return cmd
}

// reloadThroughAPI calls POST /openqps/reload on the trusted API and
// reports its answer.
func reloadThroughAPI(cmd *cobra.Command, api, certs string) error {
	cert, roots, err := pki.LoadClient(certs)
	if err != nil {
		return fmt.Errorf("%w (point --certs at the client certificate)", err)
	}
	client := &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, MinVersion: tls.VersionTLS12}},
		Timeout:   30 * time.Second,
	}
	defer client.CloseIdleConnections()
	key := session.NewID()[:16]
	req, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, strings.TrimSuffix(api, "/")+server.ReloadPath+"?xrfkey="+key, nil)
	if err != nil {
		return fmt.Errorf("--api %q: %w", api, err)
	}
	req.Header.Set(qpsapi.XrfkeyHeader, key)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		var f struct{ Error, Detail string }
		if json.Unmarshal(body, &f) == nil && f.Error != "" {
			return fmt.Errorf("%s: %s", f.Error, f.Detail)
		}
		return fmt.Errorf("reload: %s %s", resp.Status, body)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "reloaded: %s\n", body)
	return nil
}

func readPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read pid file (is openqps running with this data directory?): %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s does not hold a process id", path)
	}
	return pid, nil
}
