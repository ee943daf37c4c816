//! Replays the documented curl examples in order, carrying state from one to the next.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::Value;

use crate::context::{Ctx, expect_status};
use crate::examples::{self, Example, Step};
use crate::report::Kind;

pub(crate) async fn run(ctx: &Ctx, documented: &[Example]) {
    let mut state: BTreeMap<String, String> = BTreeMap::new();
    for example in documented {
        let many = example.steps.len() > 1;
        for (index, (command, step)) in example.commands.iter().zip(&example.steps).enumerate() {
            let id = if many {
                format!("example/{} step {} ({})", example.name, index + 1, step.operation)
            } else {
                format!("example/{}", example.name)
            };
            let started = Instant::now();
            let result = replay(ctx, command, step, &mut state).await;
            ctx.record(&id, Kind::Example, started, result);
        }
    }
}

async fn replay(
    ctx: &Ctx,
    command: &crate::curl::CurlCommand,
    step: &Step,
    state: &mut BTreeMap<String, String>,
) -> Result<(), String> {
    let request = examples::bind(command, step, state, ctx.funded_key())?;
    let path = request.path.clone();
    let resolved = ctx
        .spec
        .resolve(&request.method, &path)
        .ok_or_else(|| format!("{} {path} is not an operation of the document", request.method))?;
    if resolved.id != step.operation {
        return Err(format!(
            "{} {path} is {} in the document, the manifest says {}",
            request.method, resolved.id, step.operation
        ));
    }
    let response = ctx.target.send(&request).await?;
    expect_status(&step.operation, &response, step.status, step.code.as_deref())?;
    ctx.conforms(&step.operation, &response)?;
    let body = response.json();
    if let Some(subset) = &step.subset {
        examples::contains(&body, subset, "")?;
    }
    for (variable, pointer) in &step.capture {
        let value = body
            .pointer(pointer)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("response has no string at {pointer} to capture as `{variable}`"))?;
        state.insert(variable.clone(), value.to_owned());
    }
    Ok(())
}
