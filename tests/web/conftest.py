from tests.web.gateway_support import gateway, gateway_config, secret_key, services  # noqa: F401
