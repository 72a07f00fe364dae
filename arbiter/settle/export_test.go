package settle

// SetBeforeCommit makes the next runs of s call f just before commit.
func SetBeforeCommit(s *Settlement, f func() error) { s.beforeCommit = f }
