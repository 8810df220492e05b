// Debugger page: filled in by console/debugger.
