-- Settings every broker node of the cluster shares: the credential of the
-- meshes without members belongs to the cluster, not to a node.
CREATE TABLE cluster_settings (
    name  text PRIMARY KEY,
    value text NOT NULL
);
