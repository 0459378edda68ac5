"""Prometheus metrics, in a registry per app so that apps (and tests) do not share counters."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "cnn_mnist_requests",
            "HTTP requests by route and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "cnn_mnist_request_seconds",
            "Time to answer a request",
            ["route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.batch_size = Histogram(
            "cnn_mnist_batch_size",
            "Images per forward pass (micro-batching at work)",
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
        )
        self.predictions = Counter("cnn_mnist_predictions", "Images classified", registry=self.registry)
        self.model = Info("cnn_mnist_model", "The default model now serving", registry=self.registry)
        self.model_version = Gauge("cnn_mnist_model_version", "Default version now serving", registry=self.registry)
        self.canary_accuracy = Gauge(
            "cnn_mnist_canary_accuracy",
            "Accuracy on the canary set of each version serving",
            ["version"],
            registry=self.registry,
        )
        self._canary_versions = set()
        self.swaps = Counter(
            "cnn_mnist_model_swaps", "Model reloads by result (swapped, refused)", ["result"], registry=self.registry
        )
        # Overload (docs/operations.md, "Limits and overload"): the app's own bound, then waitress' queue.
        self.in_flight = Gauge(
            "cnn_mnist_in_flight", "Prediction requests being answered (decoded, classified)", registry=self.registry
        )
        self.max_in_flight = Gauge(
            "cnn_mnist_max_in_flight",
            "--max-in-flight: predictions answered at once before a 503",
            registry=self.registry,
        )
        self.refused = Counter(
            "cnn_mnist_refused",
            "Prediction requests refused with a 503 because --max-in-flight were in flight",
            registry=self.registry,
        )
        self.waiting = Gauge(
            "cnn_mnist_waiting",
            "Connections with a request waiting in waitress' queue for a free thread",
            registry=self.registry,
        )
        self.queued = Counter(
            "cnn_mnist_queued",
            "Requests that found every waitress thread busy (its 'Task queue depth' warnings)",
            registry=self.registry,
        )
        # Corrections (docs/corrections.md): what this process was sent; corrections_api.StoreCounts adds the store's
        self.corrections = Counter(
            "cnn_mnist_corrections_received",
            "Corrections this process was sent and stored, by label and result (created, repeat)",
            ["label", "result"],
            registry=self.registry,
        )
        self.corrections_rejected = Counter(
            "cnn_mnist_corrections_rejected",
            "Corrections refused, by reason (rate: over --corrections-per-minute; invalid: a 4xx for the input)",
            ["reason"],
            registry=self.registry,
        )

    def record_batch(self, size: int) -> None:
        self.batch_size.observe(size)
        self.predictions.inc(size)

    def record_serving(self, serving) -> None:
        """Describe a model_store.Serving snapshot: the default model, and a canary gauge per version."""
        info = serving.default_version.predictor.info
        self.model.info({"name": info.name, "version": info.version, "sha256": info.sha256})
        self.model_version.set(int(info.version))
        for version in self._canary_versions - serving.versions.keys():  # no longer served: no gauge
            self.canary_accuracy.remove(version)
        for version, served in serving.versions.items():
            self.canary_accuracy.labels(version).set(served.canary_accuracy)
        self._canary_versions = set(serving.versions)

    def record_swap(self, result: str, serving) -> None:
        self.swaps.labels(result).inc()
        self.record_serving(serving)
