"""The HTTP/JSON gateway: routes derived from the `google.api.http` annotations of the orders
and payment services, transcoded to gRPC calls (like grpc-gateway or Envoy's gRPC-JSON
transcoder). It holds no business rule: every decision is the services'."""
