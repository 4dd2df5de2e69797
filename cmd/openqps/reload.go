package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/openqps/openqps/internal/config"
)

func reloadCommand() *cobra.Command {
	var configFile, dataDir, pidFile string
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Make a running openqps read its configuration file again (sends SIGHUP to the process in the pid file)",
		Long: `reload checks the configuration file first, when --config is given, and refuses
to signal when it is invalid. The running openqps then applies it to new
requests, keeping sessions and open websockets; if it still rejects the
file (e.g. a listen address changed, which needs a restart), its log says why
and the old configuration keeps running.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
			if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
				if errors.Is(err, syscall.ESRCH) {
					return fmt.Errorf("no process %d (stale pid file %s): is openqps running?", pid, pidFile)
				}
				return fmt.Errorf("signal process %d: %w", pid, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "sent SIGHUP to openqps (pid %d); its log reports the result\n", pid)
			return nil
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "the configuration file, to check before signalling (and to find data_dir)")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "data directory holding openqps.pid")
	cmd.Flags().StringVar(&pidFile, "pid-file", "", "pid file of the running openqps (default <data_dir>/openqps.pid)")
	return cmd
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
