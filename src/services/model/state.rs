//! What every request shares: the configuration, compiled fixtures, keys and their fault
//! counters, metrics.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderMap;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use regex::Regex;

use std::path::Path;

use super::config::{Config, Fault, Fixture, FixtureError, Fixtures, ToolCall, load_fixtures};
use super::memo::{Memo, Parsed};
use super::pattern::Samples;
use super::text::{fnv, mix};
use super::turn::Turn;
use crate::services::api_error::{Api, ApiError};
use crate::services::config::ConfigError;
use crate::services::http::Uptime;
use crate::services::metrics::{GenAiLabels, HttpMetrics};

/// What a fixture answers.
#[derive(Debug, Clone)]
pub(super) enum Canned {
    /// Text.
    Reply(String),
    /// One tool call or several.
    ToolCalls(Vec<ToolCall>),
    /// An error.
    Error(FixtureError),
}

/// A fixture, compiled.
#[derive(Debug)]
struct Compiled {
    pattern: Regex,
    /// Answers the turn after tool results (whose text matches this, when given).
    after_tool: Option<Option<Regex>>,
    canned: Canned,
}

/// Shared state.
#[derive(Debug)]
pub(super) struct AppState {
    /// The configuration.
    pub config: Config,
    fixtures: Vec<Compiled>,
    /// Known keys and their own faults; `None` when any key (or none) is accepted.
    keys: Option<HashMap<String, KeyState>>,
    global: FaultCounter,
    /// HTTP metrics plus the model's own.
    pub metrics: Arc<HttpMetrics>,
    /// Tokens generated, by route and model.
    pub tokens_out: Family<ModelRouteLabels, Counter>,
    /// Start time for `/health`.
    pub uptime: Uptime,
    /// Strings made for schemas' `pattern`s.
    pub samples: Samples,
    /// Schemas parsed, documents made.
    pub memo: Memo,
    /// `replay:`: the cassettes answer instead.
    pub replay: Option<super::replay::Replay>,
}

/// One model call, as [`AppState::record_call`] records it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Call<'a> {
    /// The API it came in.
    pub api: Api,
    /// `chat`, `embeddings`…
    pub operation: &'static str,
    /// The model asked for.
    pub model: &'a str,
    /// Prompt tokens.
    pub input: u32,
    /// Tokens answered.
    pub output: u32,
    /// Whether the answer streams.
    pub streamed: bool,
}

/// A route and a model.
#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub(crate) struct ModelRouteLabels {
    route: &'static str,
    model: Arc<str>,
}

#[derive(Debug)]
struct KeyState {
    faults: Vec<Fault>,
    counter: FaultCounter,
}

/// Counts requests in one scope (all keys, or one key) to decide its faults.
#[derive(Debug, Default)]
struct FaultCounter {
    n: AtomicU64,
}

impl AppState {
    /// Builds the state from a configuration, checking it (as [`Config::from_text`]
    /// does) when it was built in code.
    pub(super) fn new(config: Config) -> Result<AppState, ConfigError> {
        let file = Path::new("<config>");
        if let Some(p) = config.problems().into_iter().next() {
            return Err(ConfigError {
                path: file.to_path_buf(),
                location: None,
                field: Some(p.field.to_string()),
                message: p.message,
            });
        }
        let fixtures = match &config.fixtures {
            Some(Fixtures::File(name)) => load_fixtures(name)?,
            _ => config.fixture_list().to_vec(),
        };
        let fixtures = fixtures.into_iter().filter_map(compile).collect();
        let keys = (!config.keys.is_empty()).then(|| {
            config
                .keys
                .iter()
                .map(|k| {
                    (
                        k.key().to_string(),
                        KeyState {
                            faults: k.faults().to_vec(),
                            counter: FaultCounter::default(),
                        },
                    )
                })
                .collect()
        });
        let mut metrics = HttpMetrics::new("stack_model");
        let tokens_out = Family::<ModelRouteLabels, Counter>::default();
        metrics.registry.register(
            "tokens_out",
            "Tokens generated, by route and model",
            tokens_out.clone(),
        );
        metrics.declare(
            "stack_model_tokens_out",
            "counter",
            "Tokens generated, by route and model",
        );
        let replay = match &config.replay {
            Some(r) => {
                let replay = super::replay::Replay::load(r)?;
                metrics.registry.register(
                    "replay_answers",
                    "Replayed answers by result (hit: from a cassette; miss: no recording) and route",
                    replay.answers.clone(),
                );
                metrics.declare(
                    "stack_model_replay_answers",
                    "counter",
                    "Replayed answers by result (hit: from a cassette; miss: no recording) and route",
                );
                Some(replay)
            }
            None => None,
        };
        Ok(AppState {
            config,
            fixtures,
            keys,
            global: FaultCounter::default(),
            metrics: Arc::new(metrics),
            tokens_out,
            uptime: Uptime::start("model"),
            samples: Samples::default(),
            memo: Memo::default(),
            replay,
        })
    }

    /// The fixture for `turn`: one that matches the question, on the turn where the user
    /// asked; one marked `after_tool` (and matching a result, when it says so), on the
    /// turn after tool results.
    pub(super) fn fixture(&self, turn: &Turn) -> Option<&Canned> {
        self.fixtures
            .iter()
            .find(|f| {
                let turn_fits = match (&f.after_tool, &turn.tool_results) {
                    (None, None) => true,
                    (Some(None), Some(_)) => true,
                    (Some(Some(re)), Some(results)) => results.iter().any(|r| re.is_match(r)),
                    _ => false,
                };
                turn_fits && f.pattern.is_match(&turn.prompt)
            })
            .map(|f| &f.canned)
    }

    /// A request's JSON fragment that carries schemas (`tools`, `response_format`…),
    /// parsed once for all requests that send the same text.
    pub(super) fn fragment(
        &self,
        api: Api,
        param: &str,
        raw: Option<&serde_json::value::RawValue>,
    ) -> Result<Option<Parsed>, ApiError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        self.memo.parse(raw).map(Some).map_err(|e| {
            let mut err = ApiError::bad_request(api, format!("invalid `{param}`: {e}"));
            err.param = Some(param.to_string());
            err
        })
    }

    /// Records one model call: its tokens in the metrics (with the model's name) and on
    /// the request's span (`chat {model}`, the GenAI attributes), when traces are on.
    pub(super) fn record_call(&self, route: &'static str, call: Call<'_>) {
        let model = self.metrics.genai.models.label(call.model);
        self.tokens_out
            .get_or_create(&ModelRouteLabels {
                route,
                model: model.clone(),
            })
            .inc_by(u64::from(call.output));
        let labels = GenAiLabels {
            gen_ai_operation_name: call.operation,
            gen_ai_provider_name: crate::services::otel::provider_name(call.api),
            gen_ai_request_model: model,
        };
        self.metrics.genai.tokens(
            &labels,
            &Arc::from(""),
            u64::from(call.input),
            u64::from(call.output),
        );
        if crate::services::otel::tracer().is_some() {
            use opentelemetry::KeyValue;
            opentelemetry::trace::get_active_span(|span| {
                span.update_name(format!("{} {}", call.operation, call.model));
                span.set_attributes([
                    KeyValue::new("gen_ai.operation.name", call.operation),
                    KeyValue::new("gen_ai.provider.name", labels.gen_ai_provider_name),
                    KeyValue::new("gen_ai.request.model", call.model.to_string()),
                    KeyValue::new("gen_ai.response.model", call.model.to_string()),
                    KeyValue::new("gen_ai.usage.input_tokens", i64::from(call.input)),
                    KeyValue::new("gen_ai.usage.output_tokens", i64::from(call.output)),
                ]);
            });
        }
        crate::services::metrics::note_call(labels, call.streamed);
    }

    /// Checks the key (when keys are configured) and rolls the fault dice: the fault this
    /// request gets, if any; `Err` for a missing or unknown key.
    pub(super) fn admit(&self, api: Api, headers: &HeaderMap) -> Result<Option<&Fault>, ApiError> {
        let mut fault = None;
        if let Some(keys) = &self.keys {
            let key = api_key(headers).ok_or_else(|| {
                ApiError::new(
                    api,
                    401,
                    "no API key: send `Authorization: Bearer KEY` or `x-api-key: KEY`",
                )
            })?;
            let state = keys.get(key).ok_or_else(|| {
                ApiError::new(api, 401, "invalid API key (not one of this mock's `keys`)")
            })?;
            if !state.faults.is_empty() {
                fault = state
                    .counter
                    .roll(self.config.seed, fnv(key.as_bytes()), &state.faults);
            }
        }
        if fault.is_none() && !self.config.faults.is_empty() {
            fault = self.global.roll(self.config.seed, 0, &self.config.faults);
        }
        Ok(fault)
    }
}

/// A checked fixture, compiled (`None` only for what [`Config::problems`] refuses).
fn compile(f: Fixture) -> Option<Compiled> {
    let pattern = Regex::new(&f.pattern).ok()?;
    let after_tool = match &f.tool_result {
        Some(p) => Some(Some(Regex::new(p).ok()?)),
        None => f.after_tool.then_some(None),
    };
    let canned = match (f.reply, f.tool_call, f.tool_calls, f.error) {
        (Some(r), ..) => Canned::Reply(r),
        (_, Some(t), ..) => Canned::ToolCalls(vec![t]),
        (_, _, Some(list), _) => Canned::ToolCalls(list),
        (.., Some(e)) => Canned::Error(e),
        _ => return None,
    };
    Some(Compiled {
        pattern,
        after_tool,
        canned,
    })
}

impl FaultCounter {
    /// The fault of this scope's next request, if one hits.
    fn roll<'a>(&self, seed: u64, scope: u64, faults: &'a [Fault]) -> Option<&'a Fault> {
        let n = self.n.fetch_add(1, Ordering::Relaxed) + 1;
        faults
            .iter()
            .enumerate()
            .find(|(i, f)| {
                if let Some(every) = f.every {
                    return n.is_multiple_of(every);
                }
                let rate = f.rate.unwrap_or(0.0);
                let x = mix(seed ^ scope ^ (*i as u64).rotate_left(48) ^ n);
                ((x >> 11) as f64 / (1u64 << 53) as f64) < rate
            })
            .map(|(_, f)| f)
    }
}

/// The key of a request: `Authorization: Bearer KEY`, else `x-api-key`.
pub(super) fn api_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// A fault's effect before the answer: its delay, then its error; a fault that cuts a
/// stream mid-way (`after_tokens`, on a streamed request) lets the stream start.
pub(super) async fn fault_before_answer(
    api: Api,
    fault: Option<&Fault>,
    stream: bool,
) -> Result<(), ApiError> {
    let Some(f) = fault else {
        return Ok(());
    };
    if let Some(ms) = f.delay_ms {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    if stream && f.after_tokens.is_some() {
        return Ok(());
    }
    fault_error(api, f).map_or(Ok(()), Err)
}

/// The error a fault answers with.
pub(super) fn fault_error(api: Api, f: &Fault) -> Option<ApiError> {
    let status = f.status?;
    let message = f.message.clone().unwrap_or_else(|| match status {
        429 => "rate limit reached (a fault injected by the mock model)".to_string(),
        529 => "overloaded (a fault injected by the mock model)".to_string(),
        s => format!("error {s} (a fault injected by the mock model)"),
    });
    let mut e = ApiError::new(api, status, message);
    if matches!(status, 429 | 503 | 529) {
        e.retry_after = Some(f.retry_after.unwrap_or(1.0));
    }
    Some(e)
}
