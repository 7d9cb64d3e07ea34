package conform

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var certificates = schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "certificates"}

// DefaultCertMinValidity is how long an Ingress's certificate must still be
// valid when spec.ingress.certMinValidity is not set.
const DefaultCertMinValidity = 14 * 24 * time.Hour

func certificateChecks() []Check {
	return []Check{{
		Name: "every TLS secret of an Ingress is valid for its hosts and not about to expire", Family: "certificates", Field: "spec.ingress.certMinValidity",
		Run: checkIngressTLS,
	}, {
		Name: "cert-manager's Certificates are Ready, where cert-manager is installed", Family: "certificates", Field: "spec.ingress",
		Run: func(ctx context.Context, t *Target) (string, error) {
			list, err := t.Dynamic.Resource(certificates).Namespace("").List(ctx, metav1.ListOptions{})
			if apierrors.IsNotFound(err) {
				return "cert-manager is not installed", nil
			}
			if err != nil {
				return "", fmt.Errorf("list cert-manager Certificates: %w", err)
			}
			var p problems
			for _, c := range list.Items {
				// A Certificate cert-manager has not processed yet has no status.
				ready, msg := "Unknown", "no status yet"
				conds, _, _ := unstructured.NestedSlice(c.Object, "status", "conditions")
				for _, x := range conds {
					m, _ := x.(map[string]any)
					if m["type"] == "Ready" {
						ready, _ = m["status"].(string)
						msg, _ = m["message"].(string)
					}
				}
				if ready != "True" {
					p.add("spec.ingress", "Certificate %s/%s is not Ready (%s): %s", c.GetNamespace(), c.GetName(), ready, msg)
				}
			}
			return plural(len(list.Items), "Certificate", "Certificates"), p.err()
		},
	}}
}

func checkIngressTLS(ctx context.Context, t *Target) (string, error) {
	minValid := DefaultCertMinValidity
	field := "spec.ingress.certMinValidity"
	if in := t.Rack.Spec.Ingress; in != nil && in.CertMinValidity.Duration > 0 {
		minValid = in.CertMinValidity.Duration
	}
	now := time.Now()
	if t.Now != nil {
		now = t.Now()
	}
	ings, err := t.Kube.NetworkingV1().Ingresses("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", fmt.Errorf("list Ingresses: %w", err)
	}
	var p problems
	checked := 0
	for _, ing := range ings.Items {
		for _, tls := range ing.Spec.TLS {
			where := fmt.Sprintf("Ingress %s/%s", ing.Namespace, ing.Name)
			if tls.SecretName == "" {
				continue // the controller's default certificate
			}
			sec, err := t.Kube.CoreV1().Secrets(ing.Namespace).Get(ctx, tls.SecretName, metav1.GetOptions{})
			if err != nil {
				p.add(field, "%s: TLS secret %s: %v", where, tls.SecretName, err)
				continue
			}
			leaf, err := leafCert(sec)
			if err != nil {
				p.add(field, "%s: TLS secret %s: %v", where, tls.SecretName, err)
				continue
			}
			checked++
			left := leaf.NotAfter.Sub(now)
			switch {
			case left <= 0:
				p.add(field, "%s: the certificate in %s expired on %s", where, tls.SecretName, leaf.NotAfter.UTC().Format(time.RFC3339))
			case left < minValid:
				p.add(field, "%s: the certificate in %s expires on %s, in %s, under the required %s", where, tls.SecretName,
					leaf.NotAfter.UTC().Format(time.RFC3339), left.Round(time.Hour), minValid)
			}
			if now.Before(leaf.NotBefore) {
				p.add(field, "%s: the certificate in %s is not valid before %s", where, tls.SecretName, leaf.NotBefore.UTC().Format(time.RFC3339))
			}
			for _, h := range tls.Hosts {
				if err := leaf.VerifyHostname(h); err != nil {
					p.add(field, "%s: the certificate in %s is not valid for host %s (it names %s)", where, tls.SecretName, h, sans(leaf))
				}
			}
		}
	}
	return fmt.Sprintf("%s checked, each valid for at least %s", plural(checked, "TLS secret", "TLS secrets"), minValid), p.err()
}

func leafCert(s *corev1.Secret) (*x509.Certificate, error) {
	data := s.Data[corev1.TLSCertKey]
	if len(data) == 0 {
		return nil, fmt.Errorf("no %s", corev1.TLSCertKey)
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s is not a PEM certificate", corev1.TLSCertKey)
	}
	return x509.ParseCertificate(b.Bytes)
}
