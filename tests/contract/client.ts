// A typed Scriptworks client: one function per operation of openapi.yaml, built with
// openapi-fetch on the types openapi-typescript generates from it (./openapi.d.ts, not committed).
// tests/contract/test_typescript_client.py compiles it with `tsc --strict`: when the document
// changes a request or a response, this file stops compiling; when it gains an operation, the
// test asks for a function here.
import createClient from "openapi-fetch";
import type { components, paths } from "./openapi";

type Schemas = components["schemas"];
type Page = { limit?: number; cursor?: string | null };

export function scriptworks(baseUrl: string, token: string, tenant: string) {
  const client = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${token}` } });
  const header = { "x-tenant-id": tenant };
  const tenantOnly = { params: { header } };
  return {
    // Operations
    health: () => client.GET("/health"),
    ready: () => client.GET("/health/ready"),
    metrics: () => client.GET("/metrics", { parseAs: "text" }),

    // Scripts, versions, audit
    listScripts: (query: Page & { q?: string | null } = {}) => client.GET("/scripts", { params: { header, query } }),
    createScript: (body: Schemas["ScriptCreate"]) => client.POST("/scripts", { ...tenantOnly, body }),
    getScript: (script_id: string) => client.GET("/scripts/{script_id}", { params: { header, path: { script_id } } }),
    updateScript: (script_id: string, etag: string, body: Schemas["ScriptUpdate"]) =>
      client.PATCH("/scripts/{script_id}", {
        params: { header: { ...header, "If-Match": etag }, path: { script_id } },
        body,
      }),
    scriptAudit: (script_id: string, query: Page = {}) =>
      client.GET("/scripts/{script_id}/audit", { params: { header, path: { script_id }, query } }),
    tenantAudit: (query: Page = {}) => client.GET("/audit", { params: { header, query } }),
    listVersions: (script_id: string, query: Page = {}) =>
      client.GET("/scripts/{script_id}/versions", { params: { header, path: { script_id }, query } }),
    createVersion: (script_id: string, body: Schemas["VersionCreate"], idempotencyKey?: string) =>
      client.POST("/scripts/{script_id}/versions", {
        params: { header: { ...header, "Idempotency-Key": idempotencyKey }, path: { script_id } },
        body,
      }),
    getVersion: (script_id: string, version: number) =>
      client.GET("/scripts/{script_id}/versions/{version}", { params: { header, path: { script_id, version } } }),
    diffVersions: (script_id: string, from_version: number, to_version: number) =>
      client.GET("/scripts/{script_id}/versions/{from_version}/diff/{to_version}", {
        params: { header, path: { script_id, from_version, to_version } },
      }),
    publishVersion: (script_id: string, version: number) =>
      client.POST("/scripts/{script_id}/versions/{version}/publish", {
        params: { header, path: { script_id, version } },
      }),

    // Runs
    listRuns: (query: Page & { scriptId?: string | null } = {}) => client.GET("/runs", { params: { header, query } }),
    startRun: (body: Schemas["RunCreate"]) => client.POST("/runs", { ...tenantOnly, body }),
    getRun: (run_id: string) => client.GET("/runs/{run_id}", { params: { header, path: { run_id } } }),
    finishRun: (run_id: string, body: Schemas["RunFinish"]) =>
      client.POST("/runs/{run_id}/finish", { params: { header, path: { run_id } }, body }),
    recordSteps: (run_id: string, body: Schemas["StepIn"][]) =>
      client.POST("/runs/{run_id}/steps", { params: { header, path: { run_id } }, body }),
    upsertVariables: (run_id: string, body: Schemas["VariableIn"][]) =>
      client.POST("/runs/{run_id}/vars", { params: { header, path: { run_id } }, body }),
    reportScheduled: (script_id: string, schedule_id: string, body: Schemas["ScheduledExecutionReport"]) =>
      client.PUT("/scripts/{script_id}/runs/scheduled/{schedule_id}", {
        params: { header, path: { script_id, schedule_id } },
        body,
      }),
    reportTriggered: (script_id: string, event_id: string, body: Schemas["ExecutionReport"]) =>
      client.PUT("/scripts/{script_id}/runs/triggered/{event_id}", {
        params: { header, path: { script_id, event_id } },
        body,
      }),

    // Commands
    postCommand: (body: Schemas["CommandIn"], idempotencyKey?: string) =>
      client.POST("/commands", { params: { header: { ...header, "Idempotency-Key": idempotencyKey } }, body }),
    listCommands: (query: Page & { status?: Schemas["CommandStatusOut"]["status"] | null } = {}) =>
      client.GET("/commands", { params: { header, query } }),
    getCommand: (correlation_id: string) =>
      client.GET("/commands/{correlation_id}", { params: { header, path: { correlation_id } } }),
    retryCommand: (correlation_id: string) =>
      client.POST("/commands/{correlation_id}/retry", { params: { header, path: { correlation_id } } }),
    cancelCommand: (correlation_id: string) =>
      client.POST("/commands/{correlation_id}/cancel", { params: { header, path: { correlation_id } } }),

    // Events
    mintStreamTicket: () => client.POST("/events/stream-tickets", tenantOnly),
    // EventSource reads the stream in a browser; this is its URL and its frames' type (parseFrame).
    openStream: (ticket: string, query: { correlationId?: string; since?: string } = {}) =>
      client.GET("/events/stream", {
        params: { query: { tenantId: tenant, access_token: ticket, ...query } },
        parseAs: "stream",
      }),
    receiveEvent: (body: Schemas["EventIn"]) => client.POST("/events", { ...tenantOnly, body }),
    getEvent: (event_id: string) => client.GET("/events/{event_id}", { params: { header, path: { event_id } } }),
    listIncomingEvents: (query: Page & { subject?: string | null; eventName?: string | null } = {}) =>
      client.GET("/events/incoming", { params: { header, query } }),
    getIncomingEvent: (event_id: string) =>
      client.GET("/events/incoming/{event_id}", { params: { header, path: { event_id } } }),

    // Triggers
    listEventTypes: (query: Page = {}) => client.GET("/event-types", { params: { header, query } }),
    createEventType: (body: Schemas["EventTypeCreate"]) => client.POST("/event-types", { ...tenantOnly, body }),
    listSubscriptions: (subject: string, query: Page = {}) =>
      client.GET("/subjects/{subject}/subscriptions/triggers", { params: { header, path: { subject }, query } }),
    subscribe: (subject: string, body: Schemas["SubscriptionCreate"]) =>
      client.POST("/subjects/{subject}/subscriptions/triggers", { params: { header, path: { subject } }, body }),
    unsubscribe: (subject: string, subscription_id: string) =>
      client.DELETE("/subjects/{subject}/subscriptions/triggers/{subscription_id}", {
        params: { header, path: { subject, subscription_id } },
      }),
    listInternalSubscriptions: (subject: string, query: Page = {}) =>
      client.GET("/internal/subjects/{subject}/subscriptions/triggers", {
        params: { header, path: { subject }, query },
      }),
    subscribeInternal: (subject: string, body: Schemas["SubscriptionCreate"]) =>
      client.POST("/internal/subjects/{subject}/subscriptions/triggers", {
        params: { header, path: { subject } },
        body,
      }),
    unsubscribeInternal: (subject: string, subscription_id: string) =>
      client.DELETE("/internal/subjects/{subject}/subscriptions/triggers/{subscription_id}", {
        params: { header, path: { subject, subscription_id } },
      }),
    listSchedules: (script_id: string, query: Page = {}) =>
      client.GET("/scripts/{script_id}/schedules", { params: { header, path: { script_id }, query } }),
    createSchedule: (script_id: string, body: Schemas["ScheduleCreate"]) =>
      client.POST("/scripts/{script_id}/schedules", { params: { header, path: { script_id } }, body }),
    getSchedule: (schedule_id: string) =>
      client.GET("/schedules/{schedule_id}", { params: { header, path: { schedule_id } } }),
    updateSchedule: (schedule_id: string, body: Schemas["ScheduleUpdate"]) =>
      client.PATCH("/schedules/{schedule_id}", { params: { header, path: { schedule_id } }, body }),
    deleteSchedule: (schedule_id: string) =>
      client.DELETE("/schedules/{schedule_id}", { params: { header, path: { schedule_id } } }),
    listEndpoints: (script_id: string, query: Page = {}) =>
      client.GET("/scripts/{script_id}/endpoints", { params: { header, path: { script_id }, query } }),
    createEndpoint: (script_id: string, body: Schemas["EndpointCreate"]) =>
      client.POST("/scripts/{script_id}/endpoints", { params: { header, path: { script_id } }, body }),
    deleteEndpoint: (script_id: string, endpoint_id: string) =>
      client.DELETE("/scripts/{script_id}/endpoints/{endpoint_id}", {
        params: { header, path: { script_id, endpoint_id } },
      }),
  };
}

// A custom endpoint is called by third parties, with the method it was created with.
export function callEndpoint(baseUrl: string, tenant_id: string, route: string, method: Schemas["EndpointOut"]["method"]) {
  const client = createClient<paths>({ baseUrl });
  const params = { params: { path: { tenant_id, route } } };
  switch (method) {
    case "GET":
      return client.GET("/hooks/{tenant_id}/{route}", params);
    case "POST":
      return client.POST("/hooks/{tenant_id}/{route}", params);
    case "PUT":
      return client.PUT("/hooks/{tenant_id}/{route}", params);
    case "PATCH":
      return client.PATCH("/hooks/{tenant_id}/{route}", params);
    case "DELETE":
      return client.DELETE("/hooks/{tenant_id}/{route}", params);
  }
}

// One frame of GET /events/stream, as EventSource hands it over, with its data decoded.
type Frame = paths["/events/stream"]["get"]["responses"][200]["content"]["text/event-stream"];
export type StoredEvent =
  | Schemas["ScriptCreatedEvent"]
  | Schemas["ScriptArchivedEvent"]
  | Schemas["VersionCreatedEvent"]
  | Schemas["ScriptPublishedEvent"]
  | Schemas["RunStartedEvent"]
  | Schemas["RunFinishedEvent"]
  | Schemas["CompletionEvent"]
  | Schemas["CommandFailedEvent"];
export type Decoded =
  | { kind: "event"; id: string; event: StoredEvent }
  | { kind: "ping"; serverTime: string }
  | { kind: "resync" | "shutdown"; notice: Schemas["StreamNotice"] };

export function parseFrame(frame: Frame): Decoded {
  if (frame.event === "ping") return { kind: "ping", serverTime: frame.data };
  if (frame.event === "resync" || frame.event === "shutdown") {
    return { kind: frame.event, notice: JSON.parse(frame.data) as Schemas["StreamNotice"] };
  }
  if (!("id" in frame)) throw new Error("a stored event's frame has an id");
  return { kind: "event", id: frame.id, event: JSON.parse(frame.data) as StoredEvent };
}

// The outcome of a command, awaited the way the product's frontend does it.
export async function completionOf(api: ReturnType<typeof scriptworks>, command: Schemas["CommandIn"]) {
  const { data, error } = await api.postCommand(command, crypto.randomUUID());
  if (error) throw new Error(`${error.code}: ${error.message}`);
  const accepted: Schemas["CommandAccepted"] = data;
  const status = await api.getCommand(accepted.correlationId);
  const outcome: Schemas["CommandOutcome"] | null | undefined = status.data?.outcome;
  return outcome;
}
