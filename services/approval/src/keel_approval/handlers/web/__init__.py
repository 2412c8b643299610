"""The reviewers' web inbox: server-rendered HTML over the same book and decision path as gRPC."""
