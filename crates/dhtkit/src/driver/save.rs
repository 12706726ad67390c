//! Writing the state file: on the blocking pool, one save at a time, with later requests
//! queued behind the running one.

use dhtkit_proto::Event;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::Driver;
use crate::state::SavedState;
use crate::Error;

/// A state save running on the blocking pool, and who waits for it.
pub(super) struct Saving {
    pub(super) task: JoinHandle<Result<usize, Error>>,
    pub(super) waiters: Vec<oneshot::Sender<Result<(), Error>>>,
}

impl Driver {
    pub(super) fn saved_state(&self) -> SavedState {
        SavedState::from_node(self.node.export_state())
    }

    /// Writes the state file on the blocking pool; `waiters` hear when it is done.
    pub(super) fn start_save(&mut self, mut waiters: Vec<oneshot::Sender<Result<(), Error>>>) {
        let Some(path) = self.cfg.state_file.clone() else {
            for w in waiters {
                let _ = w.send(Err(Error::Refused("no state file configured")));
            }
            return;
        };
        if self.saving.is_some() {
            self.save_again.append(&mut waiters);
            return;
        }
        let state = self.saved_state();
        let task = tokio::task::spawn_blocking(move || {
            state.save(&path)?;
            Ok(state.nodes.len())
        });
        self.saving = Some(Saving { task, waiters });
    }

    pub(super) fn save_done(&mut self, r: Result<usize, Error>) {
        let Some(s) = self.saving.take() else { return };
        match &r {
            Ok(nodes) => {
                let _ = self.events.send(Event::StateSaved { nodes: *nodes });
            }
            Err(e) => {
                tracing::warn!("saving state failed: {e}");
                let _ = self.events.send(Event::SocketError {
                    message: e.to_string(),
                });
            }
        }
        for w in s.waiters {
            let _ = w.send(match &r {
                Ok(_) => Ok(()),
                Err(e) => Err(Error::Io(std::io::Error::other(e.to_string()))),
            });
        }
        if !self.save_again.is_empty() {
            let again = std::mem::take(&mut self.save_again);
            self.start_save(again);
        }
    }

    /// Waits for the running save and any queued behind it.
    pub(super) async fn wait_saves(&mut self) {
        while let Some(s) = self.saving.as_mut() {
            let r = (&mut s.task).await;
            self.save_done(joined(r));
        }
    }

    /// On shutdown: let running saves finish, then write the latest state.
    pub(super) async fn final_save(&mut self) {
        self.wait_saves().await;
        if self.cfg.state_file.is_some() {
            self.start_save(Vec::new());
            self.wait_saves().await;
        }
    }
}

/// A save task's result, with a panic in it turned into an error.
pub(super) fn joined(
    r: Result<Result<usize, Error>, tokio::task::JoinError>,
) -> Result<usize, Error> {
    r.unwrap_or_else(|e| Err(Error::Io(std::io::Error::other(e))))
}
