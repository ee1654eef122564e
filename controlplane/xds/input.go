package xds

import "github.com/weftmesh/weft/controlplane/translate"

// Input returns the latest input given to Update, or nil before the first.
// The caller must not modify it: the server and its pushes share it.
func (s *Server) Input() *translate.Input { return s.input.Load() }
