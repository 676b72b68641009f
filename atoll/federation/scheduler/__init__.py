"""The multi-cluster scheduler: places (Cluster)ResourceBindings on member clusters as karmada-scheduler does.

``framework`` (filter/score plugins over Cluster objects), ``plugins`` (Karmada's in-tree
set), ``spread`` (spread constraints and topology groups), ``assignment`` and
``webster`` (replica division), ``estimation`` (available replicas from a cluster's
resource summary), ``scheduling`` (one decision), ``controller`` (the controller that
watches bindings and clusters and writes the decisions back).
"""
