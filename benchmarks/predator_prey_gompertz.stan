// Predator–prey CAR T / tumour model with Gompertz growth, one subject: the same model, data
// and priors as cartfit.inference.builder.build_model(get_model("predator_prey", "gompertz")).
//
// Log states u = ln B (tumour), v = ln C (CAR T), scaled units:
//   du/dt = r (ln K - u) - k e^v,     dv/dt = p e^u - d
// Parameters theta = (r, K, k, p, d) = exp(log_m + tau .* z), z ~ N(0, 1) (non-centred
// log-normal priors); initial log states log_y0 = y0_mean + y0_sd .* z0, z0 ~ N(0, 1);
// residual SD per analyte sigma ~ LogNormal(ln sigma_median, sigma_log_sd).
// Observation j: ln(y_j / s_a) ~ N(mu_j, sigma_a); rows below the LLOQ are left-censored
// (Beal M3): normal_lcdf(ln(LLOQ_j / s_a) | mu_j, sigma_a). Pre-infusion tumour rows (t < 0)
// use the Gompertz closed form ln B(t) = ln K + (u0 - ln K) e^{-r t}.
// Every density keeps its normalising constant (target += ..._lpdf),
// so the log density equals PyMC's at the same unconstrained point.
functions {
  vector log_rhs(real t, vector y, real r, real K, real k, real p, real d) {
    vector[2] dydt;
    dydt[1] = r * (log(K) - y[1]) - k * exp(y[2]);
    dydt[2] = p * exp(y[1]) - d;
    return dydt;
  }
}
data {
  int<lower=1> N_t;                          // ODE output times > 0, strictly increasing
  array[N_t] real ts;
  int<lower=1> N;                            // observations
  array[N] int<lower=0, upper=1> pre;        // 1 = pre-infusion tumour row (closed form)
  array[N] int<lower=1, upper=2> state;      // 1 = tumour, 2 = CAR T
  array[N] int<lower=0, upper=N_t> t_idx;    // index into ts; 0 = day 0 (initial state)
  array[N] real time;                        // days since infusion
  array[N] int<lower=1, upper=2> analyte;    // 1 = car_t, 2 = tumor (sorted names)
  array[N] real log_value;                   // ln(value / scale); ln(LLOQ / scale) if censored
  array[N] int<lower=0, upper=1> blq;
  vector[5] log_m;                           // prior medians (log)
  vector<lower=0>[5] tau;                    // prior log-SDs
  vector[2] y0_mean;
  vector<lower=0>[2] y0_sd;
  real<lower=0> sigma_median;
  real<lower=0> sigma_log_sd;
  real<lower=0> rtol;
  real<lower=0> atol;
  int<lower=1> max_steps;
}
parameters {
  vector[5] z;
  vector[2] z0;
  vector<lower=0>[2] sigma;
}
transformed parameters {
  vector[5] theta = exp(log_m + tau .* z);
  vector[2] log_y0 = y0_mean + y0_sd .* z0;
}
model {
  array[N_t] vector[2] ys = ode_rk45_tol(log_rhs, log_y0, 0.0, ts, rtol, atol, max_steps,
                                          theta[1], theta[2], theta[3], theta[4], theta[5]);
  target += std_normal_lpdf(z);
  target += std_normal_lpdf(z0);
  target += lognormal_lpdf(sigma | log(sigma_median), sigma_log_sd);
  for (j in 1:N) {
    real mu;
    if (pre[j] == 1) {
      mu = log(theta[2]) + (log_y0[1] - log(theta[2])) * exp(-theta[1] * time[j]);
    } else if (t_idx[j] == 0) {
      mu = log_y0[state[j]];
    } else {
      mu = ys[t_idx[j], state[j]];
    }
    if (blq[j] == 1) {
      target += normal_lcdf(log_value[j] | mu, sigma[analyte[j]]);
    } else {
      target += normal_lpdf(log_value[j] | mu, sigma[analyte[j]]);
    }
  }
}
