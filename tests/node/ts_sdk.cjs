// The official TypeScript MCP SDK (`@modelcontextprotocol/sdk`, in .tools/) against the
// context server (Streamable HTTP) and `stack mcp` (stdio): list the tools and call the
// read-only ones; the SDK validates every structured result against its output schema.
// Anything the SDK prints (console.warn/error: e.g. Ajv's `unknown format "uint32"
// ignored`) is a failure.
//
// Env: TOOLS (the .tools folder), CONTEXT_URL, STACK, STACK_FILE.
const { createRequire } = require("node:module");
const req = createRequire(process.env.TOOLS + "/node_modules/");
const { Client } = req("@modelcontextprotocol/sdk/client/index.js");
const { StreamableHTTPClientTransport } = req("@modelcontextprotocol/sdk/client/streamableHttp.js");
const { StdioClientTransport } = req("@modelcontextprotocol/sdk/client/stdio.js");

const printed = [];
for (const level of ["warn", "error", "log", "info", "debug"]) {
  const original = console[level].bind(console);
  console[level] = (...args) => {
    printed.push(`${level}: ${args.map(String).join(" ")}`);
    original(...args);
  };
}

async function exercise(name, transport, calls) {
  const client = new Client({ name: "ts-sdk-test", version: "1.0.0" });
  await client.connect(transport);
  const { tools } = await client.listTools();
  for (const [tool, args] of calls) {
    const r = await client.callTool({ name: tool, arguments: args });
    if (r.isError) throw new Error(`${name}: ${tool} failed: ${JSON.stringify(r.content)}`);
    if (!r.structuredContent) throw new Error(`${name}: ${tool} has no structured content`);
  }
  await client.close();
  process.stdout.write(`${name}: ${tools.length} tools, ${calls.length} calls\n`);
}

(async () => {
  const session = "ts-sdk";
  await exercise("context", new StreamableHTTPClientTransport(new URL(process.env.CONTEXT_URL)), [
    ["store_context", { session_id: session, role: "user", content: "hello from TypeScript", metadata: { source: "ts", tags: ["a"] } }],
    ["retrieve_context", { session_id: session, query: "hello" }],
    ["retrieve_context", { session_id: "nobody-here" }],
    ["list_sessions", {}],
    ["prune_context", { session_id: session, keep_last: 5 }],
    ["delete_session", { session_id: session }],
  ]);
  await exercise(
    "stack mcp",
    new StdioClientTransport({ command: process.env.STACK, args: ["-f", process.env.STACK_FILE, "mcp"], stderr: "pipe" }),
    [["list_services", {}], ["service_logs", { lines: 5 }], ["stack_env", {}], ["doctor", {}]],
  );
  if (printed.length) {
    throw new Error(`the SDK printed ${printed.length} line(s):\n${printed.join("\n")}`);
  }
  process.stdout.write("ok ts sdk\n");
})().catch((e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
