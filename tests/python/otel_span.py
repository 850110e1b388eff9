"""A user service reporting one span with the official OpenTelemetry SDK for Python, to
the endpoint the supervisor injected (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME,
OTEL_EXPORTER_OTLP_PROTOCOL): nothing in it names stack."""
import os

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

assert os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
provider = TracerProvider(resource=Resource.create())
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)
with trace.get_tracer("user-app").start_as_current_span("user work") as span:
    span.set_attribute("app.items", 3)
    with trace.get_tracer("user-app").start_as_current_span("user step"):
        pass
provider.shutdown()
print("span sent to", os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"], flush=True)
