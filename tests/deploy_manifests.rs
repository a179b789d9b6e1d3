//! Checks the deployment manifests: every file under `deploy/k8s/` and the
//! root `docker-compose.yml`. Nothing compiles them, and a cluster would only
//! reject a broken one at deploy time, so this test holds them to what the
//! platform relies on: probes, resources, a non-root user, one image with a
//! subcommand per process kind, autoscaling, and migrations before the API.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use saphyr::{LoadableYamlNode, MappingOwned, ScalarOwned, YamlOwned};

const API: &str = "agent-platform-api";
const WORKER: &str = "agent-platform-worker";
const MIGRATE: &str = "agent-platform-migrate";

/// One YAML document and the file it came from, for failure messages.
struct Doc {
    file: String,
    node: YamlOwned,
}

impl Doc {
    /// The node at `path`, or a failure naming the file and the path.
    fn at(&self, path: &[&str]) -> &YamlOwned {
        let found = get(&self.node, path);

        found.unwrap_or_else(|| panic!("{}: no `{}`", self.file, path.join(".")))
    }

    /// The scalar at `path` as text, or a failure naming the file and path.
    fn text(&self, path: &[&str]) -> String {
        let found = text(self.at(path));

        found.unwrap_or_else(|| panic!("{}: `{}` is no scalar", self.file, path.join(".")))
    }

    fn kind(&self) -> String {
        self.text(&["kind"])
    }

    fn name(&self) -> String {
        self.text(&["metadata", "name"])
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Walks mapping keys, and sequence indexes written as numbers.
fn get<'a>(node: &'a YamlOwned, path: &[&str]) -> Option<&'a YamlOwned> {
    path.iter().try_fold(node, |node, segment| match node {
        YamlOwned::Sequence(items) => items.get(segment.parse::<usize>().ok()?),
        _ => node.as_mapping_get(segment),
    })
}

/// A scalar as text, whatever its YAML type (`8000`, `"8000"`, `true`).
fn text(node: &YamlOwned) -> Option<String> {
    match node {
        YamlOwned::Value(ScalarOwned::String(s)) => Some(s.clone()),
        YamlOwned::Value(ScalarOwned::Integer(i)) => Some(i.to_string()),
        YamlOwned::Value(ScalarOwned::Boolean(b)) => Some(b.to_string()),
        YamlOwned::Value(ScalarOwned::FloatingPoint(f)) => Some(f.to_string()),
        _ => None,
    }
}

/// The scalar at `path` as text, if there is one.
fn text_at(node: &YamlOwned, path: &[&str]) -> Option<String> {
    get(node, path).and_then(text)
}

/// The scalars of the sequence at `path`; empty when there is none.
fn texts_at(node: &YamlOwned, path: &[&str]) -> Vec<String> {
    let items = get(node, path).and_then(YamlOwned::as_vec);

    items.map_or_else(Vec::new, |items| items.iter().filter_map(text).collect())
}

/// The items of the sequence at `path`; empty when there is none.
fn items_at<'a>(node: &'a YamlOwned, path: &[&str]) -> &'a [YamlOwned] {
    get(node, path)
        .and_then(YamlOwned::as_vec)
        .map_or(&[], Vec::as_slice)
}

fn keys_at(node: &YamlOwned, path: &[&str]) -> BTreeSet<String> {
    let map = get(node, path).and_then(YamlOwned::as_mapping);

    map.map(|map| map.keys().filter_map(text).collect())
        .unwrap_or_default()
}

/// Applies YAML merge keys (`<<: *anchor`), which compose files use and a
/// YAML 1.2 parser keeps as ordinary keys. A key written in the mapping
/// itself wins over a merged one.
fn resolve_merge_keys(node: YamlOwned) -> YamlOwned {
    match node {
        YamlOwned::Mapping(map) => {
            let mut merged = MappingOwned::new();
            let mut own = MappingOwned::new();
            for (key, value) in map {
                let value = resolve_merge_keys(value);
                if key.as_str() != Some("<<") {
                    own.insert(key, value);
                    continue;
                }
                let sources = match value {
                    YamlOwned::Sequence(items) => items,
                    single => vec![single],
                };
                for source in sources {
                    let YamlOwned::Mapping(source) = source else {
                        panic!("a merge key (<<) must name a mapping");
                    };
                    for (k, v) in source {
                        merged.entry(k).or_insert(v);
                    }
                }
            }
            merged.extend(own);
            YamlOwned::Mapping(merged)
        }
        YamlOwned::Sequence(items) => {
            YamlOwned::Sequence(items.into_iter().map(resolve_merge_keys).collect())
        }
        scalar => scalar,
    }
}

fn load(path: &Path) -> Vec<Doc> {
    let file = path.strip_prefix(repo_root()).unwrap_or(path);
    let file = file.display().to_string();
    let source = fs::read_to_string(path).unwrap_or_else(|e| panic!("{file}: {e}"));
    let docs = YamlOwned::load_from_str(&source);
    let docs = docs.unwrap_or_else(|e| panic!("{file} is not valid YAML: {e}"));

    docs.into_iter()
        .filter(|node| !node.is_null())
        .map(|node| Doc {
            file: file.clone(),
            node: resolve_merge_keys(node),
        })
        .collect()
}

fn k8s_dir() -> PathBuf {
    repo_root().join("deploy/k8s")
}

/// File names of every YAML file in deploy/k8s, one flat kustomization.
fn k8s_files() -> BTreeSet<String> {
    let is_yaml = |name: &String| {
        let extension = Path::new(name).extension();
        extension.is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
    };

    fs::read_dir(k8s_dir())
        .expect("deploy/k8s exists")
        .map(|entry| entry.expect("a readable entry").file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .filter(is_yaml)
        .collect()
}

/// Every Kubernetes object in deploy/k8s, the Kustomization included.
fn k8s_objects() -> Vec<Doc> {
    let files = k8s_files();

    files
        .iter()
        .flat_map(|name| load(&k8s_dir().join(name)))
        .collect()
}

fn of_kind<'a>(objects: &'a [Doc], kind: &str) -> Vec<&'a Doc> {
    objects.iter().filter(|doc| doc.kind() == kind).collect()
}

fn names_of_kind(objects: &[Doc], kind: &str) -> BTreeSet<String> {
    of_kind(objects, kind)
        .iter()
        .map(|doc| doc.name())
        .collect()
}

fn the<'a>(objects: &'a [Doc], kind: &str, name: &str) -> &'a Doc {
    let found: Vec<_> = of_kind(objects, kind)
        .into_iter()
        .filter(|doc| doc.name() == name)
        .collect();
    assert_eq!(found.len(), 1, "expected one {kind} named {name}");

    found[0]
}

fn config_map_value(objects: &[Doc], key: &str) -> String {
    let values: Vec<String> = of_kind(objects, "ConfigMap")
        .iter()
        .filter_map(|map| text_at(&map.node, &["data", key]))
        .collect();
    assert_eq!(values.len(), 1, "expected {key} in exactly one ConfigMap");

    values[0].clone()
}

/// The value a container's own `env` list gives a variable, if any.
fn container_env(container: &YamlOwned, name: &str) -> Option<String> {
    items_at(container, &["env"])
        .iter()
        .find(|var| text_at(var, &["name"]).as_deref() == Some(name))
        .and_then(|var| text_at(var, &["value"]))
}

/// Seconds in a compose duration such as `45s` or `1m`.
fn seconds(duration: &str) -> u64 {
    let digits = duration.trim_end_matches(char::is_alphabetic).len();
    let (number, unit) = duration.split_at(digits);
    let number: u64 = number.parse().expect("a whole number of time units");
    match unit {
        "" | "s" => number,
        "m" => number * 60,
        other => panic!("unexpected unit {other:?} in the duration {duration}"),
    }
}

/// A workload's one container, after checking what every pod of the
/// platform must have: a non-root user, no privilege escalation, resource
/// requests and a memory limit, and the image's own entrypoint.
fn checked_container(doc: &Doc) -> &YamlOwned {
    let file = &doc.file;
    let pod = doc.at(&["spec", "template", "spec"]);
    let containers = items_at(pod, &["containers"]);
    assert_eq!(containers.len(), 1, "{file}: one container a pod");
    let container = &containers[0];

    let setting = |key: &str| {
        get(container, &["securityContext", key])
            .or_else(|| get(pod, &["securityContext", key]))
            .and_then(text)
    };
    assert_eq!(setting("runAsNonRoot").as_deref(), Some("true"), "{file}");
    let uid = setting("runAsUser").and_then(|uid| uid.parse::<u32>().ok());
    assert!(uid.is_some_and(|uid| uid > 0), "{file}: runAsUser");
    let escalation = text_at(container, &["securityContext", "allowPrivilegeEscalation"]);
    assert_eq!(escalation.as_deref(), Some("false"), "{file}");

    for (group, resource) in [
        ("requests", "cpu"),
        ("requests", "memory"),
        ("limits", "memory"),
    ] {
        let value = text_at(container, &["resources", group, resource]);
        assert!(value.is_some(), "{file}: no resources.{group}.{resource}");
    }
    // `command` would replace the image's entrypoint, the binary itself.
    assert!(get(container, &["command"]).is_none(), "{file}: use args");

    container
}

fn image_and_args(doc: &Doc) -> (String, Vec<String>) {
    let container = checked_container(doc);
    let image = text_at(container, &["image"]);

    (image.expect("an image"), texts_at(container, &["args"]))
}

/// Readiness on /readyz and liveness on /healthz, both on `port`, which
/// the container declares (the probes may name it).
fn check_probes(doc: &Doc, container: &YamlOwned, port: u16) {
    let file = &doc.file;
    let port = port.to_string();
    let declared = items_at(container, &["ports"])
        .iter()
        .find(|p| text_at(p, &["containerPort"]) == Some(port.clone()));
    let declared = declared.unwrap_or_else(|| panic!("{file}: no containerPort {port}"));
    let port_name = text_at(declared, &["name"]);

    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let probed_path = text_at(container, &[probe, "httpGet", "path"]);
        assert_eq!(probed_path.as_deref(), Some(path), "{file}: {probe}");
        let probed_port = text_at(container, &[probe, "httpGet", "port"]);
        let on_port = probed_port == Some(port.clone()) || probed_port == port_name;
        assert!(probed_port.is_some() && on_port, "{file}: {probe} port");
    }
}

#[test]
fn kustomization_lists_every_manifest_file() {
    let objects = k8s_objects();
    let kustomization = of_kind(&objects, "Kustomization");
    assert_eq!(kustomization.len(), 1, "one Kustomization in deploy/k8s");
    assert!(kustomization[0].file.ends_with("/kustomization.yaml"));

    let listed = texts_at(&kustomization[0].node, &["resources"]);
    let mut files = k8s_files();
    files.remove("kustomization.yaml");

    assert_eq!(listed.into_iter().collect::<BTreeSet<_>>(), files);
}

#[test]
fn every_object_has_an_api_version_a_kind_and_a_name() {
    let objects = k8s_objects();

    for doc in objects.iter().filter(|doc| doc.kind() != "Kustomization") {
        assert!(!doc.text(&["apiVersion"]).is_empty(), "{}", doc.file);
        assert!(!doc.name().is_empty(), "{}: empty metadata.name", doc.file);
    }
}

#[test]
fn workloads_run_one_image_with_the_subcommand_of_their_kind() {
    let objects = k8s_objects();

    let (api_image, api_args) = image_and_args(the(&objects, "Deployment", API));
    let (worker_image, worker_args) = image_and_args(the(&objects, "Deployment", WORKER));
    let (job_image, job_args) = image_and_args(the(&objects, "Job", MIGRATE));

    assert_eq!(api_args, ["api"]);
    assert_eq!(worker_args, ["worker"]);
    assert_eq!(job_args, ["migrate"]);
    assert_eq!(api_image, worker_image);
    assert_eq!(api_image, job_image);
    let deployments = names_of_kind(&objects, "Deployment");
    assert_eq!(deployments, [API, WORKER].map(String::from).into());
}

#[test]
fn deployments_listen_outside_the_pod_and_are_probed_and_scraped() {
    let objects = k8s_objects();

    for (name, variable, port) in [
        (API, "LISTEN_ADDR", 8000),
        (WORKER, "WORKER_LISTEN_ADDR", 9000),
    ] {
        let doc = the(&objects, "Deployment", name);
        let container = checked_container(doc);
        check_probes(doc, container, port);

        let listen = container_env(container, variable);
        let listen = listen.unwrap_or_else(|| config_map_value(&objects, variable));
        assert_eq!(listen, format!("0.0.0.0:{port}"), "{}", doc.file);
        let annotations = doc.at(&["spec", "template", "metadata", "annotations"]);
        let scrape = text_at(annotations, &["prometheus.io/scrape"]);
        let scrape_port = text_at(annotations, &["prometheus.io/port"]);
        assert_eq!(scrape.as_deref(), Some("true"), "{}", doc.file);
        assert_eq!(scrape_port, Some(port.to_string()), "{}", doc.file);
    }
}

#[test]
fn workloads_read_the_config_map_and_secret_that_exist() {
    let objects = k8s_objects();
    let config_maps = names_of_kind(&objects, "ConfigMap");
    let secrets = names_of_kind(&objects, "Secret");
    assert_eq!(secrets.len(), 1, "one Secret, the example");
    let secret = the(&objects, "Secret", secrets.first().unwrap());

    for doc in [
        the(&objects, "Deployment", API),
        the(&objects, "Deployment", WORKER),
        the(&objects, "Job", MIGRATE),
    ] {
        let sources = items_at(checked_container(doc), &["envFrom"]);
        let named = |path: &[&str]| sources.iter().find_map(|s| text_at(s, path));

        let map = named(&["configMapRef", "name"]).unwrap_or_default();
        let secret = named(&["secretRef", "name"]).unwrap_or_default();
        assert!(
            config_maps.contains(&map),
            "{}: envFrom ConfigMap",
            doc.file
        );
        assert!(secrets.contains(&secret), "{}: envFrom Secret", doc.file);
    }
    let keys = keys_at(&secret.node, &["stringData"]);
    for key in [
        "DATABASE_URL",
        "REDIS_URL",
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
    ] {
        assert!(keys.contains(key), "the example Secret has no {key}");
    }
}

#[test]
fn worker_outlives_its_shutdown_grace_before_being_killed() {
    let objects = k8s_objects();
    let grace = config_map_value(&objects, "WORKER_SHUTDOWN_GRACE_SECS");
    let grace: u64 = grace
        .parse()
        .expect("WORKER_SHUTDOWN_GRACE_SECS in seconds");
    let worker = the(&objects, "Deployment", WORKER);

    let path = ["spec", "template", "spec", "terminationGracePeriodSeconds"];
    let termination: u64 = worker.text(&path).parse().expect("seconds");

    // Room after the grace for the last writes and the exit itself.
    assert!(
        termination >= grace + 10,
        "terminationGracePeriodSeconds {termination} must comfortably exceed {grace}"
    );
}

#[test]
fn api_is_scaled_on_cpu_by_a_horizontal_pod_autoscaler() {
    let objects = k8s_objects();
    let hpas = of_kind(&objects, "HorizontalPodAutoscaler");

    let hpa = hpas
        .iter()
        .find(|hpa| hpa.text(&["spec", "scaleTargetRef", "name"]) == API)
        .expect("an HPA targets the api Deployment");

    assert_eq!(hpa.text(&["apiVersion"]), "autoscaling/v2");
    assert_eq!(hpa.text(&["spec", "scaleTargetRef", "kind"]), "Deployment");
    let metrics = items_at(&hpa.node, &["spec", "metrics"]);
    let on_cpu = |m: &YamlOwned| text_at(m, &["resource", "name"]).as_deref() == Some("cpu");
    assert!(metrics.iter().any(on_cpu), "the api HPA scales on CPU");
    // The autoscaler owns the count; a fixed one would reset it on apply.
    let api = the(&objects, "Deployment", API);
    assert!(get(&api.node, &["spec", "replicas"]).is_none());
}

#[test]
fn workers_are_scaled_by_keda_on_queue_depth() {
    let objects = k8s_objects();
    let scaled_objects = of_kind(&objects, "ScaledObject");

    let scaled = scaled_objects
        .iter()
        .find(|s| s.text(&["spec", "scaleTargetRef", "name"]) == WORKER)
        .expect("a ScaledObject targets the worker Deployment");

    let trigger = scaled.at(&["spec", "triggers", "0"]);
    assert_eq!(text_at(trigger, &["type"]).as_deref(), Some("postgresql"));
    let query = text_at(trigger, &["metadata", "query"]).expect("a query");
    for part in [
        "FROM apalis.jobs",
        "job_type = 'agent-platform.runs'",
        "status = 'Pending'",
        "run_at <= now()",
    ] {
        assert!(query.contains(part), "the queue-depth query lacks {part}");
    }
    let target = text_at(trigger, &["metadata", "targetQueryValue"]);
    let target = target.and_then(|t| t.parse::<f64>().ok());
    assert!(
        target.is_some_and(|t| t > 0.0),
        "a positive targetQueryValue"
    );

    let auth = text_at(trigger, &["authenticationRef", "name"]).expect("an auth");
    let auth = the(&objects, "TriggerAuthentication", &auth);
    let reference = auth.at(&["spec", "secretTargetRef", "0"]);
    assert_eq!(
        text_at(reference, &["parameter"]).as_deref(),
        Some("connection")
    );
    assert_eq!(
        text_at(reference, &["key"]).as_deref(),
        Some("DATABASE_URL")
    );
    // Only a live worker re-queues the jobs of a worker that died.
    assert_ne!(scaled.text(&["spec", "minReplicaCount"]), "0");
    let worker = the(&objects, "Deployment", WORKER);
    assert!(get(&worker.node, &["spec", "replicas"]).is_none());
}

#[test]
fn migration_job_runs_migrate_and_cleans_up_after_itself() {
    let objects = k8s_objects();
    let job = the(&objects, "Job", MIGRATE);

    let (_, args) = image_and_args(job);

    assert_eq!(args, ["migrate"]);
    assert!(job.text(&["spec", "backoffLimit"]).parse::<u32>().is_ok());
    assert!(
        job.text(&["spec", "ttlSecondsAfterFinished"])
            .parse::<u32>()
            .is_ok()
    );
    let restart = job.text(&["spec", "template", "spec", "restartPolicy"]);
    assert!(restart == "Never" || restart == "OnFailure");
}

fn compose_services() -> YamlOwned {
    let mut docs = load(&repo_root().join("docker-compose.yml"));
    assert_eq!(docs.len(), 1, "docker-compose.yml is one document");

    docs.remove(0).at(&["services"]).clone()
}

#[test]
fn compose_defines_the_five_services() {
    let services = compose_services();

    let names = keys_at(&services, &[]);

    let expected = ["api", "migrate", "postgres", "redis", "worker"];
    assert_eq!(names, expected.map(String::from).into());
    for name in ["postgres", "redis"] {
        let check = get(&services, &[name, "healthcheck", "test"]);
        assert!(check.is_some(), "{name} has a health check");
    }
    let volumes = texts_at(&services, &["postgres", "volumes"]);
    assert!(
        volumes
            .iter()
            .any(|v| v.ends_with(":/var/lib/postgresql/data"))
    );
}

#[test]
fn compose_runs_one_image_built_from_the_dockerfile() {
    let services = compose_services();
    let mut images = BTreeSet::new();

    for (name, starts) in [
        ("migrate", "agent-platform migrate"),
        ("api", "api"),
        ("worker", "worker"),
    ] {
        images.insert(text_at(&services, &[name, "image"]).expect("an image"));
        let dockerfile = text_at(&services, &[name, "build", "dockerfile"]);
        assert_eq!(dockerfile.as_deref(), Some("deploy/docker/Dockerfile"));
        let command = texts_at(&services, &[name, "command"]);
        let first = command.first().map(String::as_str).unwrap_or_default();
        assert!(first.starts_with(starts), "{name} runs {command:?}");
    }

    assert_eq!(images.len(), 1, "one image for every application service");
    assert!(repo_root().join("deploy/docker/Dockerfile").is_file());
    let migrate = texts_at(&services, &["migrate", "command"]).concat();
    assert!(
        migrate.contains("demo-tenants"),
        "migrate creates the demo tenants"
    );
}

#[test]
fn compose_api_waits_for_migrations_and_redis() {
    let services = compose_services();
    let api = services.as_mapping_get("api").expect("an api service");

    let condition = |on: &str| text_at(api, &["depends_on", on, "condition"]);

    let completed = Some("service_completed_successfully".to_owned());
    assert_eq!(condition("migrate"), completed);
    assert_eq!(condition("redis").as_deref(), Some("service_healthy"));
    let listen = text_at(api, &["environment", "LISTEN_ADDR"]);
    assert_eq!(listen.as_deref(), Some("0.0.0.0:8000"));
    assert!(text_at(api, &["environment", "REDIS_URL"]).is_some());
    assert!(get(api, &["healthcheck", "test"]).is_some());
    let ports = texts_at(api, &["ports"]);
    assert!(
        ports.iter().any(|p| p.ends_with(":8000")),
        "api publishes 8000"
    );
}

#[test]
fn compose_worker_can_scale_and_finishes_its_runs_on_stop() {
    let services = compose_services();
    let worker = services.as_mapping_get("worker").expect("a worker service");

    // A published port or a fixed name would stop `--scale worker=N`.
    assert!(get(worker, &["ports"]).is_none());
    assert!(get(worker, &["container_name"]).is_none());
    let condition = text_at(worker, &["depends_on", "migrate", "condition"]);
    assert_eq!(condition.as_deref(), Some("service_completed_successfully"));
    let listen = text_at(worker, &["environment", "WORKER_LISTEN_ADDR"]);
    assert_eq!(listen.as_deref(), Some("0.0.0.0:9000"));

    let grace = text_at(worker, &["environment", "WORKER_SHUTDOWN_GRACE_SECS"]);
    let grace: u64 = grace.map_or(30, |g| g.parse().expect("seconds"));
    let stop = text_at(worker, &["stop_grace_period"]).expect("stop_grace_period");
    assert!(
        seconds(&stop) > grace,
        "stop_grace_period {stop} <= {grace}s"
    );
}

#[test]
fn compose_commits_no_provider_key() {
    let services = compose_services();

    for name in ["migrate", "api", "worker"] {
        for key in ["OPENAI_API_KEY", "ANTHROPIC_API_KEY"] {
            let value = text_at(&services, &[name, "environment", key]);
            let committed = value.filter(|v| !v.starts_with("${"));
            assert_eq!(committed, None, "{name}: {key} must come from the host");
        }
    }
}
