//go:build !unix

package redistest

// Pause skips the test: there is no SIGSTOP here.
func (s *Server) Pause() { s.t.Skip("pausing redis-server needs SIGSTOP") }

// Resume does nothing: see Pause.
func (s *Server) Resume() {}
