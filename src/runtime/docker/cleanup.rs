//! Cleanup by label: a project's containers, network and volumes, found without state,
//! so `down` works after a killed supervisor.

use std::collections::HashMap;
use std::time::Duration;

use bollard::query_parameters::{ListContainersOptionsBuilder, ListVolumesOptionsBuilder};

use super::{Docker, DockerError, PROJECT_LABEL, RUN_LABEL, Summary, api};

impl Docker {
    /// The containers of `project`, by label.
    pub(crate) async fn containers(&self, project: &str) -> Result<Vec<Summary>, DockerError> {
        self.labelled(vec![format!("{PROJECT_LABEL}={project}")])
            .await
    }

    /// The containers carrying every one of `labels` (`key=value`).
    async fn labelled(&self, labels: Vec<String>) -> Result<Vec<Summary>, DockerError> {
        let filters = HashMap::from([("label".to_string(), labels)]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = self.api.list_containers(Some(options)).await.map_err(api)?;
        Ok(list
            .into_iter()
            .map(|c| Summary {
                id: c.id.unwrap_or_default(),
                running: c.state == Some(bollard::models::ContainerSummaryStateEnum::RUNNING),
            })
            .collect())
    }

    /// Kills and removes the containers of one run of `project` (see
    /// [`crate::runtime::reaper`]); how many there were.
    pub(crate) async fn reap(&self, project: &str, run: &str) -> Result<usize, DockerError> {
        let containers = self
            .labelled(vec![
                format!("{PROJECT_LABEL}={project}"),
                format!("{RUN_LABEL}={run}"),
            ])
            .await?;
        let removals = containers.iter().map(|c| self.remove(&c.id));
        for r in futures::future::join_all(removals).await {
            r?;
        }
        Ok(containers.len())
    }

    /// Removes the project network(s), unless something still uses them.
    pub(crate) async fn remove_network(&self, project: &str) {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{PROJECT_LABEL}={project}")],
        )]);
        let Ok(nets) = self.networks(&filters).await else {
            return;
        };
        for n in nets {
            // By id: two networks may share a name.
            if let Some(id) = n.id {
                let _ = self.api.remove_network(&id).await;
            }
        }
    }

    /// Stops and removes every container of `project`, its network, and (with `volumes`)
    /// its volumes — found by label, without any state. Returns how many containers.
    pub(crate) async fn down(
        &self,
        project: &str,
        timeout: Duration,
        volumes: bool,
    ) -> Result<usize, DockerError> {
        let containers = self.containers(project).await?;
        let stops = containers.iter().map(|c| async move {
            let _ = self.stop(&c.id, timeout).await;
            self.remove(&c.id).await
        });
        for r in futures::future::join_all(stops).await {
            r?;
        }
        self.remove_network(project).await;
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{PROJECT_LABEL}={project}")],
        )]);
        if volumes {
            let vols = self
                .api
                .list_volumes(Some(
                    ListVolumesOptionsBuilder::default()
                        .filters(&filters)
                        .build(),
                ))
                .await
                .map_err(api)?;
            for v in vols.volumes.unwrap_or_default() {
                let _ = self
                    .api
                    .remove_volume(
                        &v.name,
                        None::<bollard::query_parameters::RemoveVolumeOptions>,
                    )
                    .await;
            }
        }
        Ok(containers.len())
    }
}
