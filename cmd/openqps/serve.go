package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/demo"
	"github.com/openqps/openqps/internal/gcpace"
	"github.com/openqps/openqps/internal/sdnotify"
	"github.com/openqps/openqps/internal/server"
)

func serveCommand() *cobra.Command {
	var configFile, dataDir, cpuProfile, pidFile string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the proxy: the trusted API (:4243) and the front end (:8443); with no --config, the demo",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg *config.Config
			var local map[string]http.Handler
			var log *slog.Logger
			var logLevel *slog.LevelVar
			var dm *demo.Demo
			if configFile == "" {
				log, logLevel = newLogger(config.Log{Level: "info", Format: "text"})
				var err error
				if dm, err = demo.Start(log); err != nil {
					return err
				}
				defer dm.Close()
				cfg, local = dm.Config(), dm.Local()
			} else {
				var err error
				if cfg, err = config.Load(configFile); err != nil {
					return fmt.Errorf("configuration: %w", err)
				}
				log, logLevel = newLogger(cfg.Log)
			}
			if dataDir != "" {
				cfg.DataDir = dataDir
			}
			defer gcpace.Start().Stop()
			if cpuProfile != "" {
				stopProfile, err := startCPUProfile(cpuProfile)
				if err != nil {
					return err
				}
				defer stopProfile()
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), stopSignals...)
			defer stop()
			ctx, serviceFinished, err := asService(ctx)
			if err != nil {
				return fmt.Errorf("windows service: %w", err)
			}
			defer serviceFinished()
			hup := make(chan os.Signal, 1)
			if len(reloadSignals) > 0 {
				signal.Notify(hup, reloadSignals...)
			}
			defer signal.Stop(hup)
			srv, err := server.Start(ctx, server.Options{Config: cfg, Log: log, LogLevel: logLevel, ConfigFile: configFile, DataDir: dataDir, Local: local})
			if err != nil {
				return err
			}
			if dm != nil {
				dm.Connect(srv.APIAddr, srv.Certs.ClientTLS())
				log.Info("demo mode: no configuration file given", "hub", dm.HubURL,
					"try", "https://localhost"+portSuffix(srv.FrontendAddr)+"/sessionvp/hub/", "certs", srv.Certs.Dir)
			}
			if pidFile == "" {
				pidFile = filepath.Join(cfg.DataDir, "openqps.pid")
			}
			if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
				log.Warn("cannot write the pid file; openqps reload will not find this process", "file", pidFile, "err", err)
			} else {
				defer os.Remove(pidFile)
				defer os.Remove(reloadStatusFile(pidFile))
			}
			status := reloadStatus{PID: os.Getpid()}
			notify(log, sdnotify.Ready)
		serving:
			for {
				select {
				case <-ctx.Done():
					break serving
				case err = <-srv.Err():
					break serving
				case <-hup:
					notify(log, sdnotify.Reloading)
					status.Seq++
					status.OK, status.Error = true, ""
					if err := srv.ReloadFile(); err != nil {
						status.OK, status.Error = false, err.Error()
						log.Error("reload rejected; the running configuration stays", "event", "config.reload_rejected", "file", configFile, "err", err)
					}
					status.VirtualProxies = len(srv.CurrentConfig().VirtualProxies)
					if err := writeReloadStatus(reloadStatusFile(pidFile), status); err != nil {
						log.Warn("cannot write the reload status; openqps reload will not learn the result", "err", err)
					}
					notify(log, sdnotify.Ready)
				}
			}
			notify(log, sdnotify.Stopping)
			timeout := srv.CurrentConfig().Frontend.ShutdownTimeout
			log.Info("shutting down", "event", "shutdown", "timeout", timeout)
			shutdownCtx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			if serr := srv.Shutdown(shutdownCtx); serr != nil && err == nil {
				err = serr
			}
			return err
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "YAML configuration file (none: the demo setup)")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "data directory for certificates and the session store (default from the config, else ./openqps-data)")
	cmd.Flags().StringVar(&pidFile, "pid-file", "", "where to write the process id, for openqps reload (default <data_dir>/openqps.pid)")
	cmd.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile to this file until shutdown (for go tool pprof)")
	cmd.Flags().MarkHidden("cpuprofile")
	return cmd
}

// notify tells systemd the state when it started openqps as a
// Type=notify service; a failure is logged, never fatal.
func notify(log *slog.Logger, state string) {
	if _, err := sdnotify.Notify(state); err != nil {
		log.Warn("cannot notify systemd", "state", state, "err", err)
	}
}

// startCPUProfile profiles the process until the returned function runs.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// newLogger returns the process's logger and its level, which a reload
// may change.
func newLogger(c config.Log) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), level
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts)), level
}

// portSuffix is ":port" of addr, or "" for 443.
func portSuffix(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "443" {
		return ""
	}
	return ":" + port
}
