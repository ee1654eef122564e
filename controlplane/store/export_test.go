package store

// SetBeforeApplyCommit makes Apply call f between its read and its write.
func SetBeforeApplyCommit(s *Store, f func()) { s.beforeApplyCommit = f }
