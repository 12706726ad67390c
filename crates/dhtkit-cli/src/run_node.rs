//! `dhtkit node`: run until SIGINT or SIGTERM.

use std::io::Write;
use std::process::ExitCode;

use dhtkit::{DhtBuilder, EventJson, Id};
use serde_json::json;

use crate::BadInput;

pub(crate) async fn run(
    b: DhtBuilder,
    advertise: Vec<(Id, u16)>,
    print_events: bool,
) -> Result<ExitCode, BadInput> {
    let dht = match b.build().await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let mut events = dht.events();
    eprintln!("dhtkit node {} listening on {}", dht.id(), dht.local_addr());
    let stdout = std::io::stdout();
    for (ih, port) in advertise {
        if dht.advertise(ih, Some(port)).await.is_err() {
            eprintln!("error: node stopped");
            return Ok(ExitCode::from(1));
        }
    }
    let Some(mut stop) = crate::StopSignals::install() else {
        return Ok(ExitCode::from(1));
    };
    let mut reported_loss = 0;
    loop {
        tokio::select! {
            _ = stop.recv() => break,
            ev = events.recv(), if print_events => {
                let Some(ev) = ev else { break };
                let mut out = stdout.lock();
                if events.lost() > reported_loss {
                    let _ = writeln!(out, "{}", json!({"event": "events_lost", "count": events.lost() - reported_loss}));
                    reported_loss = events.lost();
                }
                if writeln!(out, "{}", ev.to_json()).and_then(|_| out.flush()).is_err() {
                    // Whoever read our events is gone (`dhtkit node --events | head`): stop,
                    // as a filter does, saving state on the way out.
                    break;
                }
            }
        }
    }
    dht.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
