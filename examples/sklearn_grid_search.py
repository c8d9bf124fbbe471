"""scikit-learn's GridSearchCV with its fits run as aksrun jobs, through joblib's backend.

    pip install 'aksrun[joblib]' scikit-learn
    python examples/sklearn_grid_search.py

Without Azure settings this runs on the local backend (the same lifecycle as on AKS). On AKS,
give the pods scikit-learn with `requirements=["scikit-learn==<your version>"]` in
`parallel_config` (or an `image=` that has it): the fits unpickle scikit-learn objects there.
"""

import joblib
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV
from sklearn.svm import SVC

import aksrun  # noqa: F401 (makes joblib's backend="aksrun" known)


def main() -> None:
    X, y = load_digits(return_X_y=True)
    X, y = X[:600], y[:600]  # small enough to finish in seconds on a laptop
    grid = {"C": [1, 10], "gamma": [0.001, 0.01]}
    search = GridSearchCV(SVC(), grid, cv=3, n_jobs=4)  # 12 fits, 4 at a time, in one job

    with joblib.parallel_config(backend="aksrun", cpu="1", memory="1Gi"):
        search.fit(X, y)

    print(f"best params: {search.best_params_}")
    print(f"best cross-validated accuracy: {search.best_score_:.3f}")
    print("the fits ran as one aksrun job: `aksrun jobs ls` shows it")


if __name__ == "__main__":
    main()
