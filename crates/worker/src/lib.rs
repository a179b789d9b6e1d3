//! The worker: takes run jobs from the queue, calls the model adapter, writes results.
