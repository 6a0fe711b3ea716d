"""The gRPC transport: each model's own contract, live reflection (v1, v1alpha) and health.

``runner.grpc.server.create_server(settings, registry)`` builds a server over a registry;
``python -m runner.grpc`` is a standalone serving process (spawned by ``model-runner serve``).
Only this package imports grpc.
"""
