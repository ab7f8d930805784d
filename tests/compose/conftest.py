"""The proxy tests' fixtures (real backends and a real proxy on 127.0.0.1),
for the tests of the compose stack's files."""

from tests.proxy.conftest import backends, client, no_proxy_errors, start_proxy  # noqa: F401
