// Sends a few spans to a collector with one of the standard OpenTelemetry JS trace exporters,
// unchanged and with default settings, as an application would.
//
//   node send_spans.mjs <grpc|http-json|http-proto> <http://host:port> <marker>
//
// The marker names the service, the session and the spans, so the caller can find them.
// Exits 0 once the collector acknowledged the export; non-zero with the error otherwise.

import { SpanKind, SpanStatusCode, context, diag, DiagConsoleLogger, DiagLogLevel, trace } from "@opentelemetry/api";
import { ExportResultCode } from "@opentelemetry/core";
import { OTLPTraceExporter as GrpcExporter } from "@opentelemetry/exporter-trace-otlp-grpc";
import { OTLPTraceExporter as JsonExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { OTLPTraceExporter as ProtoExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";

const EXPORTERS = {
  grpc: (endpoint) => new GrpcExporter({ url: endpoint }),
  "http-json": (endpoint) => new JsonExporter({ url: `${endpoint}/v1/traces` }),
  "http-proto": (endpoint) => new ProtoExporter({ url: `${endpoint}/v1/traces` }),
};

const [transport, endpoint, marker] = process.argv.slice(2);
if (!(transport in EXPORTERS) || !endpoint || !marker) {
  console.error(`usage: node send_spans.mjs <${Object.keys(EXPORTERS).join("|")}> <http://host:port> <marker>`);
  process.exit(2);
}
diag.setLogger(new DiagConsoleLogger(), DiagLogLevel.WARN);

// Spans are recorded first and exported in one explicit call, so its result is known here
// (a span processor would only log a failed export).
const recorded = new InMemorySpanExporter();
const provider = new TracerProvider({
  resource: resourceFromAttributes({ "service.name": `node-${marker}` }),
  spanProcessors: [new SimpleSpanProcessor({ exporter: recorded })],
});
const tracer = provider.getTracer("sessionlens-node-test", "1.0.0");
const session = { "session.id": `session-${marker}` };

const root = tracer.startSpan(`root-${marker}`, {
  kind: SpanKind.SERVER,
  attributes: {
    ...session,
    "test.string": "hello",
    "test.int": 42,
    "test.double": 0.25,
    "test.bool": true,
    "test.strings": ["a", "b"],
  },
});
root.addEvent("request.received", { "event.size": 3 });
const inRoot = trace.setSpan(context.active(), root);
const failing = tracer.startSpan(`child-${marker}`, { kind: SpanKind.CLIENT, attributes: session }, inRoot);
failing.addEvent("retry", { "retry.attempt": 1, "retry.reason": "timeout" });
failing.setStatus({ code: SpanStatusCode.ERROR, message: "upstream failed" });
failing.end();
const sibling = tracer.startSpan(`sibling-${marker}`, { attributes: session }, inRoot);
sibling.end();
root.end();

const spans = recorded.getFinishedSpans();
const exporter = EXPORTERS[transport](endpoint);
const result = await new Promise((resolve) => exporter.export(spans, resolve));
await exporter.shutdown();
await provider.shutdown();
if (result.code !== ExportResultCode.SUCCESS) {
  console.error(`${transport} export to ${endpoint} failed: ${result.error?.stack ?? result.error}`);
  process.exit(1);
}
console.log(`${transport}: exported ${spans.length} spans`);
