"""Serving: the registry of live models, the one data plane, the admin (swap) operations, onboarding
and pre-swap validation. Transport-free: the edges (runner.http, runner.grpc, runner.cli) call in."""
