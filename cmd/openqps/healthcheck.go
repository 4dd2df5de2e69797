package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/openqps/openqps/internal/config"
)

// healthcheckCommand is the container image's HEALTHCHECK: the image is
// FROM scratch, with no shell or curl, so the binary asks its own metrics
// listener.
func healthcheckCommand() *cobra.Command {
	var configFile, url string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 when a running openqps answers 200 on /healthz of its metrics listener, else 1",
		Long: `healthcheck GETs /healthz on the metrics listener of a running openqps (metrics.listen
in --config, or --url) and exits 0 when it answers 200. It is the container
image's HEALTHCHECK, which has no shell or curl to do it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if url == "" {
				addr := "127.0.0.1:9090"
				if configFile != "" {
					cfg, err := config.Load(configFile)
					if err != nil {
						return err
					}
					if cfg.Metrics.Listen == "" {
						return fmt.Errorf("%s: metrics.listen is empty, so there is no /healthz to ask", configFile)
					}
					addr = cfg.Metrics.Listen
				}
				url = "http://" + dialable(addr) + "/healthz"
			}
			client := &http.Client{Timeout: timeout}
			resp, err := client.Get(url)
			if err != nil {
				return fmt.Errorf("unhealthy: %w", err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("unhealthy: %s answered %s %s", url, resp.Status, body)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "healthy: %s answered %s\n", url, resp.Status)
			return nil
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "configuration file whose metrics.listen to ask")
	cmd.Flags().StringVar(&url, "url", "", "the /healthz URL (default http://127.0.0.1:9090/healthz, or from --config)")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "how long to wait for the answer")
	return cmd
}

// dialable turns a listen address into one to dial: ":9090" and
// "0.0.0.0:9090" listen everywhere, including on loopback.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
