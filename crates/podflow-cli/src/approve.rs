//! `podflow approve` and `podflow reject`: a person's decision on an episode's proposal
//! (shows with `approval = "required"`). The request is checked first — an unknown
//! episode, a proposal that is not the latest, one already decided — and refused with the
//! reason (exit 1); otherwise its event goes on the bus and the pipeline runs until the
//! episode is published, or its chosen prompts have run again and been proposed anew.

use podflow_core::EpisodeStore;
use publisher::approval::{self, Request};

use crate::{
    commands::{self, EXIT_BAD_INPUT},
    runtime::{Pipeline, Settings, open_db},
};

/// A decision as the command line gives it.
#[derive(Debug)]
pub struct DecisionArgs {
    pub episode_id: String,
    pub proposal: Option<u32>,
    pub request: Request,
}

/// Checks and sends the decision, then runs the pipeline until the episode settles.
pub async fn decide(settings: &Settings, args: DecisionArgs, json: bool) -> anyhow::Result<i32> {
    // Checked before the pipeline starts: a refusal costs nothing and changes nothing.
    let db = open_db(&settings.data_dir)?;
    let envelope = match approval::decide(
        &db as &dyn EpisodeStore,
        &args.episode_id,
        args.proposal,
        args.request,
        "cli",
    )
    .await
    {
        Ok(envelope) => envelope,
        Err(refused) => {
            eprintln!("error: {refused}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    drop(db);
    let pipeline = Pipeline::start(settings).await?;
    pipeline.db.publish(&[envelope])?;
    let episodes = [args.episode_id];
    commands::settle(pipeline, &settings.data_dir, &episodes, json).await
}
