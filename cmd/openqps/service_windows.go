//go:build windows

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"
)

// serviceName is the name openqps service install registers.
const serviceName = "openqps"

// asService runs serve under the Windows service manager when it started
// the process: the returned context ends when the manager says stop or
// shut down, and finished must be called once serve has shut down, so the
// manager learns the service stopped. From a console it returns ctx as it
// is.
func asService(ctx context.Context) (_ context.Context, finished func(), err error) {
	isService, err := svc.IsWindowsService()
	if err != nil || !isService {
		return ctx, func() {}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		// Run returns when Execute does; its error has no one to go to
		// but the context, which ends serve.
		svc.Run(serviceName, serviceHandler{stop: cancel, done: done})
		cancel()
	}()
	return ctx, func() { close(done) }, nil
}

type serviceHandler struct {
	stop context.CancelFunc
	done <-chan struct{}
}

// Execute reports the service running, ends serve on Stop or Shutdown and
// returns once serve has finished its shutdown.
func (h serviceHandler) Execute(_ []string, requests <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	for {
		select {
		case r := <-requests:
			switch r.Cmd {
			case svc.Interrogate:
				status <- r.CurrentStatus
			case svc.Stop, svc.Shutdown:
				status <- svc.Status{State: svc.StopPending}
				h.stop()
				<-h.done
				return false, 0
			}
		case <-h.done: // serve ended by itself (a listener failed)
			return false, 1
		}
	}
}

func serviceCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "service", Short: "Install or remove openqps as a Windows service"}
	var configFile string
	install := &cobra.Command{
		Use:   "install",
		Short: "Register openqps serve --config <file> as the automatic Windows service \"openqps\"",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configFile == "" {
				return fmt.Errorf("--config is required: a service runs in C:\\Windows\\System32, so give the file (and in it an absolute data_dir)")
			}
			cfg, err := filepath.Abs(configFile)
			if err != nil {
				return err
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			m, err := mgr.Connect()
			if err != nil {
				return fmt.Errorf("connect to the service manager (run as administrator): %w", err)
			}
			defer m.Disconnect()
			s, err := m.CreateService(serviceName, exe, mgr.Config{
				DisplayName: "openqps",
				Description: "Authenticating reverse proxy speaking the Qlik Sense Proxy Service API",
				StartType:   mgr.StartAutomatic,
			}, "serve", "--config", cfg)
			if err != nil {
				return fmt.Errorf("create service %s: %w", serviceName, err)
			}
			defer s.Close()
			fmt.Fprintf(cmd.OutOrStdout(), "installed service %s: %s serve --config %s (start it with: sc.exe start %s)\n", serviceName, exe, cfg, serviceName)
			return nil
		},
	}
	install.Flags().StringVar(&configFile, "config", "", "the configuration file the service runs with")
	remove := &cobra.Command{
		Use:   "remove",
		Short: "Remove the Windows service \"openqps\" (stop it first)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := mgr.Connect()
			if err != nil {
				return fmt.Errorf("connect to the service manager (run as administrator): %w", err)
			}
			defer m.Disconnect()
			s, err := m.OpenService(serviceName)
			if err != nil {
				return fmt.Errorf("service %s is not installed: %w", serviceName, err)
			}
			defer s.Close()
			if err := s.Delete(); err != nil {
				return fmt.Errorf("remove service %s: %w", serviceName, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed service %s\n", serviceName)
			return nil
		},
	}
	cmd.AddCommand(install, remove)
	return cmd
}

// platformCommands are the commands only Windows has.
func platformCommands() []*cobra.Command { return []*cobra.Command{serviceCommand()} }
