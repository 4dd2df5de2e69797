//go:build unix

package redistest

import "syscall"

// Pause stops the server with SIGSTOP: its connections stay open but
// nothing answers, as with a hung server or a network partition. The
// server is continued when the test ends (or by Resume), so that Stop can
// reap it.
func (s *Server) Pause() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		s.t.Fatalf("SIGSTOP redis-server: %v", err)
	}
	cmd := s.cmd
	s.t.Cleanup(func() { cmd.Process.Signal(syscall.SIGCONT) })
}

// Resume continues a paused server with SIGCONT.
func (s *Server) Resume() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		s.t.Fatalf("SIGCONT redis-server: %v", err)
	}
}
