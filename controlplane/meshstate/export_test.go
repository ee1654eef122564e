package meshstate

// SetAfterLoad makes Run call f after each load, before it starts watching.
func SetAfterLoad(w *Watcher, f func()) { w.afterLoad = f }
